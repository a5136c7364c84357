#!/usr/bin/env bash
# The whole test suite, after bootstrapping the environment. Extra arguments go to pytest.
# Tests on the real HAM10000 sets run when DERMSPARK_DATA names ../shared/data (.ci/run sets it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh" --with-browser
cd "$root"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore::DeprecationWarning,ignore::UnicodeWarning}"
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
"$root/.venv/bin/ruff" check .
# Two workers: the cluster tests (whose driver mostly waits on its executors) on one, the rest
# on the other, each with its own session fixtures (tests/conftest.py).
exec "$root/.venv/bin/python" -m pytest -n 2 "$@"
