#!/usr/bin/env bash
# The image's entry point. Spark on Kubernetes starts executor pods with the argument
# `executor` and describes the executor in SPARK_* variables, as Spark's own images expect;
# anything else runs as given (e.g. ./spark-submit.sh ... in a driver or gateway pod).
set -euo pipefail

if [ "${1:-}" = executor ]; then
    shift
    # Spark passes the executor's Java options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...
    java_opts=()
    while IFS= read -r line; do java_opts+=("$line"); done < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/[^=]*=//')
    exec java "${java_opts[@]}" -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
        -cp "$SPARK_HOME/jars/*" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
        --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" --cores "$SPARK_EXECUTOR_CORES" \
        --app-id "$SPARK_APPLICATION_ID" --hostname "$SPARK_EXECUTOR_POD_IP" \
        --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" --podName "$SPARK_EXECUTOR_POD_NAME"
fi
cd /opt/dermspark
exec "$@"
