#!/usr/bin/env bash
# A real Spark standalone cluster on 127.0.0.1, from the pip pyspark alone (it has no
# start-master.sh): one master and N workers, each a JVM of its own.
#
#   scripts/cluster.sh start [--workers 2] [--cores 1] [--memory 2g] [--port 7077] [--webui-port 8080]
#                            [--isolated [--share DIR]...]
#   scripts/cluster.sh status
#   scripts/cluster.sh restart-worker N   (starts worker N again as it was, after it died or was killed)
#   scripts/cluster.sh stop
#
# start waits until every worker has registered and prints the master URL; jobs then run with
#   ./spark-submit.sh JOB --master spark://127.0.0.1:7077 ...
# State (pids, logs, the master's URLs) lives in $DERMSPARK_CLUSTER_DIR (default build/cluster).
#
# --isolated: a cluster whose nodes share no disk with the driver. Each worker runs in its own
# mount namespace (scripts/isolate.sh, as root) where this checkout, /tmp and HOME are empty;
# it keeps only Spark's jars and the Python install (what a node has installed), its own state
# folder, and each --share DIR, which stands for a network mount every node has. Executors then
# see the driver's files only through the storage they would share on a real cluster.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${DERMSPARK_CLUSTER_DIR:-$root/build/cluster}"
command="${1:-}"
[ $# -gt 0 ] && shift
index=""
if [ "$command" = restart-worker ] && [ $# -gt 0 ]; then index="$1"; shift; fi

workers=2 cores=1 memory=2g port=7077 webui=8080 isolated=no shares=()
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) workers="$2"; shift 2 ;;
        --cores) cores="$2"; shift 2 ;;
        --memory) memory="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --webui-port) webui="$2"; shift 2 ;;
        --isolated) isolated=yes; shift ;;
        --share) shares+=("$2"); shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

stop() {
    local pids=()
    for pidfile in "$state"/*.pid; do
        [ -e "$pidfile" ] || continue
        pids+=("$(cat "$pidfile")")
        rm -f "$pidfile"
    done
    # spark-class execs java, so these are the JVMs; wait for them, so their ports are free.
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "${pids[@]}" 2>/dev/null || break
        sleep 0.2
    done
    [ ${#pids[@]} -gt 0 ] && kill -9 "${pids[@]}" 2>/dev/null || true
    rm -f "$state/master"
}

# Waits until the master's JSON lists `wanted` workers ALIVE (DERMSPARK_CLUSTER_START_S, default
# 180 s: three JVMs starting beside a busy test suite on 2 cores took over a minute); fails at
# once when one of the JVMs died (gone, or a zombie).
wait_alive() {
    local wanted="$1"
    "$root/.venv/bin/python" - "$(sed -n 2p "$state/master")" "$wanted" "${DERMSPARK_CLUSTER_START_S:-180}" \
        "$state"/*.pid <<'PY'
import json, sys, time, urllib.request
webui, wanted, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pids = [int(open(path).read()) for path in sys.argv[4:]]
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for pid in pids:
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                sys.exit(1)
        except OSError:
            sys.exit(1)
    try:
        with urllib.request.urlopen(f"{webui}/json/", timeout=2) as answer:
            alive = [w for w in json.load(answer)["workers"] if w["state"] == "ALIVE"]
        if len(alive) >= wanted:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
PY
}

# Runs worker N's saved command in the background and records its pid (the JVM's: every
# launcher on the way execs).
launch_worker() {
    local index="$1"
    bash "$state/worker-$index.command" >"$state/worker-$index.log" 2>&1 &
    echo $! >"$state/worker-$index.pid"
}

case "$command" in
    start)
        "$root/scripts/bootstrap.sh"
        if [ -e "$state/master" ]; then
            echo "a cluster is already running: $(head -1 "$state/master") (scripts/cluster.sh stop)" >&2
            exit 2
        fi
        mkdir -p "$state"
        # spark-class finds Spark through SPARK_HOME; its own guess needs pyspark on the system python.
        SPARK_HOME="$("$root/.venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
        export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$state"
        # Workers keep application folders (with shipped archives) under here.
        export SPARK_WORKER_DIR="$state/work"
        class="$root/.venv/bin/spark-class"
        "$class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" \
            --webui-port "$webui" >"$state/master.log" 2>&1 &
        echo $! >"$state/master.pid"
        launcher=()
        worker_class="$class"
        if [ "$isolated" = yes ]; then
            python_home="$("$root/.venv/bin/python" -c 'import sys; print(sys.base_prefix)')"
            launcher=("$root/scripts/isolate.sh" --hide /tmp --hide "$root" --hide "$HOME"
                      --keep "$SPARK_HOME" --keep "$python_home" --keep "$state")
            for dir in "${shares[@]}"; do launcher+=(--keep "$dir"); done
            launcher+=(--)
            # .venv is hidden from the worker: Spark's own launcher, from the kept jars.
            worker_class="$SPARK_HOME/bin/spark-class"
        fi
        printf 'spark://127.0.0.1:%s\nhttp://127.0.0.1:%s\n' "$port" "$webui" >"$state/master"
        for index in $(seq 1 "$workers"); do
            # Each node's scratch space (shuffle, fetched archives) on its own disk. The command
            # is saved, so that restart-worker starts the same node again.
            mkdir -p "$state/local-$index"
            {
                printf 'export SPARK_HOME=%q SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR=%q SPARK_WORKER_DIR=%q SPARK_LOCAL_DIRS=%q\n' \
                    "$SPARK_HOME" "$state" "$SPARK_WORKER_DIR" "$state/local-$index"
                # A finished application's folder holds its unpacked environment (1.6 GB an
                # executor): on one machine a few applications would fill the disk. Removed a
                # minute after the application ends.
                printf 'export SPARK_WORKER_OPTS=%q\n' "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=30 -Dspark.worker.cleanup.appDataTtl=30"
                printf 'exec'
                printf ' %q' "${launcher[@]}" "$worker_class" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 \
                    --cores "$cores" --memory "$memory" --webui-port 0 "spark://127.0.0.1:$port"
                printf '\n'
            } >"$state/worker-$index.command"
            launch_worker "$index"
        done
        if ! wait_alive "$workers"; then
            echo "the cluster did not come up (a JVM died, or ${DERMSPARK_CLUSTER_START_S:-180} s passed); logs in $state:" >&2
            tail -n 5 "$state"/*.log >&2 || true
            stop
            exit 1
        fi
        echo "spark://127.0.0.1:$port ($workers workers x $cores cores, $memory$([ "$isolated" = yes ] && echo ", isolated"); web UI http://127.0.0.1:$webui)"
        ;;
    status)
        [ -e "$state/master" ] || { echo "no cluster running"; exit 1; }
        webui_url="$(sed -n 2p "$state/master")"
        "$root/.venv/bin/python" - "$webui_url" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/json/", timeout=3) as answer:
    master = json.load(answer)
print(master["url"], master["status"])
for worker in master["workers"]:
    print(f"  {worker['id']} {worker['state']} cores {worker['coresused']}/{worker['cores']} "
          f"memory {worker['memoryused']}/{worker['memory']} MB")
PY
        ;;
    restart-worker)
        [ -f "$state/worker-$index.command" ] || { echo "no worker '$index' in $state" >&2; exit 2; }
        kill -9 "$(cat "$state/worker-$index.pid")" 2>/dev/null || true
        launch_worker "$index"
        wait_alive "$(ls "$state"/worker-*.command | wc -l)" || { echo "worker $index did not come back:" >&2;
            tail -n 5 "$state/worker-$index.log" >&2; exit 1; }
        echo "worker $index is back"
        ;;
    stop)
        stop
        ;;
    *)
        sed -n '2,19p' "$0" >&2
        exit 2
        ;;
esac
