"""What every job entry point shares: the job runner (flags to settings, a Spark session, one
library call, the closing lines), readable logs, and one clear message per user error."""

import contextlib
import logging
import os
import sys
from typing import Any

from dermspark import DermsparkError


def configure_logging() -> None:
    from dermspark.tracking.server import quiet_mlflow

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet_mlflow()
    logging.basicConfig(level=logging.INFO, format="[dermspark] %(message)s", stream=sys.stdout)
    for noisy in (
        "py4j",
        "petastorm",
        "horovod",
        "tensorflow",
        "matplotlib",
        "PIL",
        "botocore",
        "aiobotocore",
        "s3fs",
        "fsspec",
        "mlflow",
        "alembic",
        "urllib3",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # When Horovod's driver thread first calls into the JVM, py4j finds a pooled connection the
    # JVM has closed, retries successfully on a new one, and logs the first failure's traceback
    # through the root logger (java_gateway.py), which no logger level can single out.
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: "py4j" not in record.pathname)


@contextlib.contextmanager
def job_errors(job: str):
    """A DermsparkError ends the job with its message and exit status 2, not a stack trace."""
    try:
        yield
    except DermsparkError as error:
        print(f"[dermspark] {job} failed: {error}", file=sys.stderr)
        sys.exit(2)


def run_job(
    entry_point: str,
    settings_class: type,
    function,
    description: str,
    argv: list[str] | None = None,
    spark: bool = True,
):
    """What each jobs/JOB.py does: its flags and conf/JOB.yaml into settings checked before
    anything starts, `function(spark, settings)` (or `function(settings)` for a job without
    Spark), a user error as one line, and the result's closing lines. Returns the result."""
    from dermspark.cli import parse
    from dermspark.settings_core import resolve

    job = os.path.splitext(os.path.basename(entry_point))[0]
    settings_file, overrides = parse(settings_class, entry_point, description, argv)
    configure_logging()
    with job_errors(job):
        settings: Any = resolve(settings_class, settings_file, overrides)
        if not spark:
            return function(settings)
        from dermspark.session import spark_session

        session = spark_session(f"dermspark-{job}")
        quiet_spark(session)
        try:
            result = function(session, settings)
        finally:
            session.stop()
    print_lines(*result.summary())
    return result


def quiet_spark(spark) -> None:
    spark.sparkContext.setLogLevel("ERROR")


def print_lines(title: str, lines: dict) -> None:
    print(f"[dermspark] {title}")
    for key, value in lines.items():
        print(f"[dermspark]   {key}: {value}")


@contextlib.contextmanager
def stage(job: str, what: str):
    """A line when a stage of a job starts and one when it ends, with its time and whatever the
    stage puts in the yielded dict (its counts): what a person watching a long job follows."""
    import time

    log = logging.getLogger(f"dermspark.{job}")
    log.info("%s: %s ...", job, what)
    started, counts = time.monotonic(), dict[str, Any]()
    yield counts
    details = ", ".join(
        f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}" for key, value in counts.items()
    )
    log.info("%s: %s done in %.1f s%s", job, what, time.monotonic() - started, f": {details}" if details else "")
