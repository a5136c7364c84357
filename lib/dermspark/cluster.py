"""Fail-fast checks of the cluster a job runs on, before any Spark action can wait forever.

A standalone master that cannot place the executors a job asks for (more memory or cores than any
worker has) keeps the job waiting with "Initial job has not accepted any resources", and a
Horovod job with more processes than task slots waits for slots that never come. Both become one
clear error here, within seconds. (No Java and a master that does not answer are caught earlier,
by spark-submit.sh, before a JVM starts.) So does a local path that the executors cannot see.
"""

import contextlib
import json
import logging
import os
import time
import urllib.request
import uuid
from typing import overload
from urllib.parse import urlparse

from dermspark import DermsparkError
from dermspark.storage import local_path, to_url

log = logging.getLogger(__name__)

# The standalone master's web UI, whose /json/ lists its workers; default: the master's host, 8080.
WEB_UI_SETTING = "spark.dermspark.masterWebUI"


@overload
def _conf(spark, key: str) -> str | None: ...
@overload
def _conf(spark, key: str, default: str) -> str: ...
def _conf(spark, key, default=None):
    return spark.sparkContext.getConf().get(key, default)


def _megabytes(spark, size: str) -> int:
    return int(spark.sparkContext._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsMb(size))


def standalone_workers(spark) -> list[dict] | None:
    """The master's alive workers (cores, memory in MB), or None when its web UI does not answer."""
    master = _conf(spark, "spark.master", "")
    url = _conf(spark, WEB_UI_SETTING) or f"http://{urlparse(master).hostname}:8080"
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/json/", timeout=5) as answer:
            state = json.load(answer)
    except (OSError, ValueError) as error:
        log.warning(
            "cluster: cannot read the master's state at %s (%s); set %s to check resources before starting",
            url,
            error,
            WEB_UI_SETTING,
        )
        return None
    return [worker for worker in state.get("workers", []) if worker.get("state") == "ALIVE"]


def standalone_capacity(
    workers: list[dict], executor_memory_mb: int, executor_cores: int | None, task_cpus: int, cores_max: int | None
) -> int:
    """Task slots the master could give one application at most; raises when no worker can host
    a single executor. executor_cores None: one executor per worker, with all its cores."""
    if not workers:
        raise DermsparkError("the Spark master has no alive worker: start workers, or check their logs")
    largest_memory = max(worker["memory"] for worker in workers)
    if executor_memory_mb > largest_memory:
        raise DermsparkError(
            f"spark.executor.memory is {executor_memory_mb} MB but no worker offers that much (the largest "
            f"offers {largest_memory} MB): lower spark.executor.memory or give workers more memory"
        )
    largest_cores = max(worker["cores"] for worker in workers)
    if executor_cores and executor_cores > largest_cores:
        raise DermsparkError(
            f"spark.executor.cores is {executor_cores} but no worker has that many cores (the largest has "
            f"{largest_cores}): lower spark.executor.cores"
        )
    cores = 0
    for worker in workers:
        if executor_cores:
            executors = min(worker["cores"] // executor_cores, worker["memory"] // executor_memory_mb)
            cores += executors * executor_cores
        elif worker["memory"] >= executor_memory_mb:
            cores += worker["cores"]
    if cores_max:
        cores = min(cores, cores_max)
    return cores // task_cpus


def _registered_slots(spark, executor_cores: int | None, task_cpus: int) -> int:
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # less the driver
    if executor_cores:
        return executors * executor_cores // task_cpus
    return spark.sparkContext.defaultParallelism // task_cpus if executors > 0 else 0


def rank_threads(spark, num_proc: int) -> int:
    """TensorFlow threads for each Horovod rank: the cores Spark reserved for its task
    (spark.task.cpus), not the host's, which under YARN or Kubernetes others share. In local
    mode the ranks are the only tasks of the driver's own cores, so they split those."""
    task_cpus = int(_conf(spark, "spark.task.cpus", "1"))
    if _conf(spark, "spark.master", "local").startswith("local"):
        return max(task_cpus, spark.sparkContext.defaultParallelism // max(1, num_proc))
    return task_cpus


def check_cluster(spark, slots_needed: int = 1, wait_seconds: float = 60.0, what: str = "this job") -> int:
    """Returns the task slots the job has once at least `slots_needed` are registered; raises a
    DermsparkError at once when they can never be, or after wait_seconds when they are not."""
    master = _conf(spark, "spark.master", "local")
    task_cpus = int(_conf(spark, "spark.task.cpus", "1"))
    if master.startswith("local"):
        slots = spark.sparkContext.defaultParallelism // task_cpus
        if slots < slots_needed:
            raise DermsparkError(f"{what} needs {slots_needed} task slots at once but {master} offers {slots}")
        return slots
    executor_cores = int(_conf(spark, "spark.executor.cores", "0")) or None
    if master.startswith("spark://"):
        workers = standalone_workers(spark)
        if workers is not None:
            cores_max = int(_conf(spark, "spark.cores.max", "0")) or None
            memory = _megabytes(spark, _conf(spark, "spark.executor.memory", "1g"))
            capacity = standalone_capacity(workers, memory, executor_cores, task_cpus, cores_max)
            if capacity < slots_needed:
                raise DermsparkError(
                    f"{what} needs {slots_needed} task slots at once but {master} can give at most {capacity} "
                    f"({len(workers)} workers; spark.executor.cores {executor_cores or 'all'}, spark.task.cpus "
                    f"{task_cpus}): lower --num-proc, or add workers or cores"
                )
    if _conf(spark, "spark.dynamicAllocation.enabled", "false") == "true":
        return slots_needed  # executors come when tasks ask for them
    deadline = time.monotonic() + wait_seconds
    while (slots := _registered_slots(spark, executor_cores, task_cpus)) < slots_needed:
        if time.monotonic() > deadline:
            raise DermsparkError(
                f"after {wait_seconds:.0f} s {master} has given {what} {slots} of the {slots_needed} task slots "
                "it needs: other applications may hold the rest (see the master's web UI)"
            )
        time.sleep(0.5)
    return slots


PROBE_PREFIX = ".dermspark-probe-"


def _nearest_folder(path: str) -> str:
    """The path itself when it is a folder, else its nearest existing parent folder."""
    folder = path
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return folder


def check_reachable(spark, paths: dict[str, str | None]) -> None:
    """On a cluster, each local path (file:// or bare) that executors read or write must be on
    storage every node reaches. The driver leaves a token file beside each, and a task on every
    task slot looks for them: a path some executor cannot see stops the job here, within
    seconds, instead of as a missing file deep in a task (or, for outputs, silently on the
    wrong machine). Paths on other stores (s3://, hdfs://) are every node's by nature."""
    if _conf(spark, "spark.master", "local").startswith("local"):
        return
    local = {flag: path for flag, url in paths.items() if url and (path := local_path(to_url(url))) is not None}
    if not local:
        return
    flags, tokens = list(local), []
    try:
        for flag in flags:
            token = os.path.join(_nearest_folder(local[flag]), f"{PROBE_PREFIX}{uuid.uuid4().hex}")
            with open(token, "w"):
                pass
            tokens.append(token)
        slots = max(1, spark.sparkContext.defaultParallelism)
        seen = (
            spark.sparkContext.parallelize(range(slots), slots)
            .map(lambda _, wanted=tuple(tokens): [os.path.exists(token) for token in wanted])
            .collect()
        )
    finally:
        for token in tokens:
            with contextlib.suppress(OSError):
                os.remove(token)
    hidden = [flag for index, flag in enumerate(flags) if not all(row[index] for row in seen)]
    if hidden:
        named = ", ".join(f"{flag} {local[flag]}" for flag in hidden)
        raise DermsparkError(
            f"{named}: the executors cannot see this path on the driver's own disk. On a cluster, every "
            "path that executors read or write must be on storage every node reaches: HDFS, S3 "
            "(s3://bucket/...) or a network mount at the same path on every node"
        )
