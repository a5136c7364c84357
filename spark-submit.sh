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
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jobs="ingest train score monitor serve"

usage() {
    echo "usage: $0 {${jobs// /|}} [--master URL] [--conf KEY=VALUE]... [--profile NAME] [--pack-env yes|no|auto] [--env-archive URL | --env-dir DIR] [job options]" >&2
    echo "       $0 JOB --help   lists the options of one job" >&2
    exit 2
}

[ $# -ge 1 ] || usage
job="$1"
shift
case " $jobs " in *" $job "*) ;; *) echo "unknown job '$job'" >&2; usage ;; esac

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
# service, the driver and, in local mode, every process of a job import it from there, so a job
# never sees its code change under it (scripts/pack_env.py).
PYTHONPATH="$("$root/.venv/bin/python" "$root/scripts/pack_env.py" --installed)"
export PYTHONPATH

if [ "$job" = serve ]; then
    export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
    exec "$root/.venv/bin/python" "$root/jobs/serve.py" "$@"
fi

master=""
profile=""
# yes: ship .venv packed (executors with nothing installed); no: executors use this machine's
# .venv path; auto: yes for any master but local.
pack_env="${DERMSPARK_PACK_ENV:-auto}"
env_archive="${DERMSPARK_ENV_ARCHIVE:-}"
env_dir="${DERMSPARK_ENV_DIR:-}"
spark_args=()
job_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --master) [ $# -ge 2 ] || usage; master="$2"; shift 2 ;;
        --master=*) master="${1#*=}"; shift ;;
        --conf) [ $# -ge 2 ] || usage; spark_args+=(--conf "$2"); shift 2 ;;
        --conf=*) spark_args+=(--conf "${1#*=}"); shift ;;
        --profile) [ $# -ge 2 ] || usage; profile="$2"; shift 2 ;;
        --profile=*) profile="${1#*=}"; shift ;;
        --pack-env) [ $# -ge 2 ] || usage; pack_env="$2"; shift 2 ;;
        --pack-env=*) pack_env="${1#*=}"; shift ;;
        --env-archive) [ $# -ge 2 ] || usage; env_archive="$2"; shift 2 ;;
        --env-archive=*) env_archive="${1#*=}"; shift ;;
        --env-dir) [ $# -ge 2 ] || usage; env_dir="$2"; shift 2 ;;
        --env-dir=*) env_dir="${1#*=}"; shift ;;
        *) job_args+=("$1"); shift ;;
    esac
done
if [ -z "$profile" ]; then
    case "$master" in spark://*) profile=standalone ;; yarn*) profile=yarn ;; k8s://*) profile=k8s ;; *) profile=local ;; esac
fi
properties="$root/conf/spark/$profile.properties"
[ -f "$properties" ] || { echo "no Spark profile $properties" >&2; exit 2; }
[ -n "$master" ] && spark_args+=(--master "$master")

# Fail-fast checks that need no JVM; resources are
# checked in the job, see lib/dermspark/cluster.py.
case "$master" in
    spark://*)
        address="${master#spark://}"
        address="${address%%,*}"  # the first of several masters (standby masters) is enough
        if ! timeout 3 bash -c "exec 3<>/dev/tcp/${address%:*}/${address##*:}" 2>/dev/null; then
            echo "[dermspark] $job failed: the Spark master $master does not answer (nothing listens at" \
                "$address): start it (scripts/cluster.sh start for a local one) or fix --master" >&2
            exit 2
        fi
        # The local cluster of scripts/cluster.sh: tell the job where its master's state is.
        cluster_state="${DERMSPARK_CLUSTER_DIR:-$root/build/cluster}/master"
        if [ -f "$cluster_state" ] && [ "$(sed -n 1p "$cluster_state")" = "$master" ]; then
            spark_args+=(--conf "spark.dermspark.masterWebUI=$(sed -n 2p "$cluster_state")")
        fi
        ;;
esac

case "$pack_env" in
    auto) case "$master" in ""|local*) pack_env=no ;; *) pack_env=yes ;; esac ;;
    yes|no) ;;
    *) echo "--pack-env must be yes, no or auto, not '$pack_env'" >&2; exit 2 ;;
esac
if [ -n "$env_archive" ] && [ -n "$env_dir" ]; then
    echo "[dermspark] $job failed: give --env-archive or --env-dir, not both" >&2
    exit 2
fi
if [ -n "$env_archive" ] || [ -n "$env_dir" ]; then
    # Its name says which lock and which code it holds: executors running other code than this
    # driver would fail in ways far from the cause.
    expected="$("$root/.venv/bin/python" "$root/scripts/pack_env.py" --name)"
    if [ -n "$env_archive" ] && [ "${env_archive##*/}" != "$expected" ]; then
        echo "[dermspark] $job failed: --env-archive $env_archive is not this checkout's environment" \
            "($expected): put it there with scripts/pack_env.py --upload ${env_archive%/*}/" >&2
        exit 2
    fi
    env_dir="${env_dir%/}"
    if [ -n "$env_dir" ] && [ "${env_dir##*/}" != "${expected%.tar.gz}" ]; then
        echo "[dermspark] $job failed: --env-dir $env_dir is not this checkout's environment" \
            "(${expected%.tar.gz}): unpack it there with scripts/pack_env.py --unpack ${env_dir%/*}/" >&2
        exit 2
    fi
fi
# What executors run: an environment already on every node, or one Spark unpacks per application.
executor_python=""
if [ -n "$env_dir" ]; then
    # Already on every node: nothing shipped, nothing unpacked per application.
    pack_env=no
    executor_python="$env_dir/bin/python"
elif [ -n "$env_archive" ]; then
    pack_env=yes
elif [ "$pack_env" = yes ]; then
    env_archive="$("$root/.venv/bin/python" "$root/scripts/pack_env.py")"
fi
if [ "$pack_env" = yes ]; then
    # The environment with dermspark installed, unpacked by Spark in each executor's folder;
    # its Python, and so every Horovod rank, imports dermspark from its own site-packages.
    spark_args+=(--archives "$env_archive#environment")
    executor_python=./environment/bin/python
fi
if [ -n "$executor_python" ]; then
    spark_args+=(--conf "spark.pyspark.python=$executor_python"
                 --conf "spark.pyspark.driver.python=$root/.venv/bin/python")
fi

export PYSPARK_PYTHON="$root/.venv/bin/python"
export PYSPARK_DRIVER_PYTHON="$root/.venv/bin/python"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# MLflow reports usage unless told not to; dermspark reaches no server but the one given.
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"
# Petastorm 0.13 on pyarrow 14 warns on every call about APIs it cannot stop using.
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore::DeprecationWarning,ignore::UnicodeWarning}"
if [ "$profile" = local ] || [ "$profile" = standalone ]; then
    export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
fi
log4j="-Dlog4j2.configurationFile=file:$root/conf/spark/log4j2.properties"

# The driver's log settings only: a path on this machine means nothing to executors on other
# nodes (their JVMs logged "No configuration found" for it), and in local mode they are the driver.
exec "$root/.venv/bin/spark-submit" \
    --properties-file "$properties" \
    --driver-java-options "$log4j" \
    "${spark_args[@]}" \
    "$root/jobs/$job.py" "${job_args[@]}"
