#!/usr/bin/env bash
# The one entry point for every dermspark job:
#   ./spark-submit.sh JOB [--master URL] [--conf KEY=VALUE]... [--profile NAME] [--pack-env yes|no|auto]
#                     [--env-archive URL | --env-dir DIR] [job options]
# JOB is ingest, train, score, monitor or serve. --master and --conf pass through to the real spark-submit;
# --profile picks conf/spark/NAME.properties (default: standalone, yarn or k8s by the master, else local).
# --env-archive URL (or DERMSPARK_ENV_ARCHIVE): executors unpack that environment archive, already
# on the cluster's storage (scripts/pack_env.py --upload puts it there), instead of one packed and
# shipped from here. --env-dir DIR (or DERMSPARK_ENV_DIR): executors run the environment already
# unpacked at DIR on every node (scripts/pack_env.py --unpack puts it on a shared mount), so
# nothing is fetched or unpacked per application.
# serve runs no Spark job: it starts the prediction service with the project's Python.
#
# This script checks only what Python needs to start; the launcher's decisions are in
# lib/dermspark/launch.py (unit-tested in tests/test_launch.py).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
job="${1:-dermspark}"

# A light submit: the environment must be built (scripts/bootstrap.sh, once, where a compiler
# is) and current; this compiles and installs nothing.
# shellcheck source=scripts/env_stamp.sh
. "$root/scripts/env_stamp.sh"
if [ ! -x "$root/.venv/bin/python" ]; then
    echo "[dermspark] $job failed: no environment at $root/.venv: build it once with scripts/bootstrap.sh" >&2
    exit 2
fi
if [ "$(cat "$root/.venv/.bootstrap-stamp" 2>/dev/null)" != "$(env_stamp "$root")" ]; then
    echo "[dermspark] $job failed: the environment at $root/.venv is not current with pyproject.toml and" \
        "constraints.txt: rerun scripts/bootstrap.sh" >&2
    exit 2
fi
command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ] || {
    echo "[dermspark] $job failed: Spark needs Java 17 and 'java' is not on PATH: install it or set JAVA_HOME" >&2
    exit 2
}

# dermspark installed from this checkout's wheel into build/code/HASH, named by the code. The
# launcher, the service, the driver and, in local mode, every process of a job import it from
# there, so a job never sees its code change under it (scripts/pack_env.py).
PYTHONPATH="$("$root/.venv/bin/python" "$root/scripts/pack_env.py" --installed)"
export PYTHONPATH
exec "$root/.venv/bin/python" -m dermspark.launch "$root" "$@"
