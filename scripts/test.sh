#!/usr/bin/env bash
# The whole test suite, on the environment scripts/bootstrap.sh built (run once before, with
# --with-browser for the browser test's Chromium; this installs no system package). Extra
# arguments go to pytest. Tests on the real HAM10000 sets run when DERMSPARK_DATA names
# ../shared/data (.ci/run sets it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Builds or refreshes .venv when pyproject.toml or constraints.txt changed; seconds otherwise.
"$root/scripts/bootstrap.sh"
cd "$root"
# The environment every dermspark process runs with, from the launcher (one place).
eval "$("$root/.venv/bin/python" -m dermspark.launch --environment)"
"$root/.venv/bin/ruff" check .
"$root/.venv/bin/ruff" format --check .
"$root/.venv/bin/mypy"  # lib/, as pyproject.toml's [tool.mypy] says
# Two workers: the cluster tests (whose driver mostly waits on its executors) on one, the rest
# on the other, each with its own session fixtures (tests/conftest.py).
exec "$root/.venv/bin/python" -m pytest -n 2 "$@"
