#!/usr/bin/env bash
# A local MLflow tracking server and model registry on 127.0.0.1, for users and tests:
#   scripts/mlflow.sh start|stop|status
# Runs and registered models live in a SQLite database and an artifact folder under
# DERMSPARK_MLFLOW_DIR (default .mlflow in the checkout); the port is DERMSPARK_MLFLOW_PORT
# (default 5000). Artifacts go through the server (mlflow-artifacts:/), so a job's executors
# need to reach only the server. Telemetry is off; the server listens on loopback only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${DERMSPARK_MLFLOW_DIR:-$root/.mlflow}"
port="${DERMSPARK_MLFLOW_PORT:-5000}"
url="http://127.0.0.1:$port"
pidfile="$dir/server.pid"
mlflow="$root/.venv/bin/mlflow"

say() { printf '[mlflow] %s\n' "$*"; }
die() { printf '[mlflow] error: %s\n' "$*" >&2; exit 1; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
healthy() { "$root/.venv/bin/python" -c "import sys, urllib.request as u; u.urlopen(sys.argv[1] + '/health', timeout=2)" "$url" 2>/dev/null; }

case "${1:-}" in
start)
    [ -x "$mlflow" ] || die "no $mlflow: run scripts/bootstrap.sh first"
    if running; then
        say "already running at $url (pid $(cat "$pidfile"))"
        exit 0
    fi
    mkdir -p "$dir/artifacts"
    # Its own session, so stop ends the server and every worker it started.
    MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$mlflow" server \
        --host 127.0.0.1 --port "$port" -w 1 \
        --backend-store-uri "sqlite:///$dir/mlflow.db" \
        --artifacts-destination "$dir/artifacts" --serve-artifacts \
        >"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 120); do
        if healthy; then
            say "running at $url (data in $dir); export MLFLOW_TRACKING_URI=$url"
            exit 0
        fi
        running || { tail -20 "$dir/server.log" >&2; die "the server exited; its log is $dir/server.log"; }
        sleep 0.5
    done
    die "the server did not answer at $url within 60 s; its log is $dir/server.log"
    ;;
stop)
    if running; then
        kill -TERM -- "-$(cat "$pidfile")" 2>/dev/null || kill -TERM "$(cat "$pidfile")"
        for _ in $(seq 40); do running || break; sleep 0.25; done
        running && kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null
        say "stopped"
    else
        say "not running"
    fi
    rm -f "$pidfile"
    ;;
status)
    if running && healthy; then
        say "running at $url (pid $(cat "$pidfile"), data in $dir)"
    else
        say "not running"
        exit 3
    fi
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
