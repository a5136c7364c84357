"""The Spark session of every job, and the one way dermspark takes S3 credentials.

S3 credentials and endpoint are boto's standard environment variables in the submitting shell
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_REGION or
AWS_DEFAULT_REGION). From there they reach every reader and writer of the job:
- fsspec on the driver reads them directly;
- executors' Python and Horovod's ranks get them as spark.executorEnv.*;
- Spark's own S3A connector, where the cluster has one, gets them as spark.hadoop.fs.s3a.*.
Where none are set, each side uses its own default chain (an instance role, say). Credentials
given only as spark.hadoop.fs.s3a.* would reach Spark and not fsspec: that is one clear error.
Spark redacts the secret and the token (keys matching "secret" or "token") in its UI and logs;
dermspark never writes them into settings, manifests or its own log lines.
"""

import os
from collections.abc import Mapping

from dermspark import DermsparkError

S3_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
_S3A = "spark.hadoop.fs.s3a."


def s3_conf(environ: Mapping[str, str]) -> dict[str, str]:
    """The Spark properties that carry the AWS_* variables of `environ` to executors and S3A."""
    values = {name: environ[name] for name in S3_VARIABLES if environ.get(name)}
    conf = {f"spark.executorEnv.{name}": value for name, value in values.items()}
    if "AWS_ACCESS_KEY_ID" in values and "AWS_SECRET_ACCESS_KEY" in values:
        conf[_S3A + "access.key"] = values["AWS_ACCESS_KEY_ID"]
        conf[_S3A + "secret.key"] = values["AWS_SECRET_ACCESS_KEY"]
        if "AWS_SESSION_TOKEN" in values:
            conf[_S3A + "session.token"] = values["AWS_SESSION_TOKEN"]
            conf[_S3A + "aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
    if "AWS_ENDPOINT_URL" in values:
        endpoint = values["AWS_ENDPOINT_URL"]
        conf[_S3A + "endpoint"] = endpoint
        # S3-compatible stores (MinIO, Ceph, a test server) answer at one host, not per bucket.
        conf[_S3A + "path.style.access"] = "true"
        conf[_S3A + "connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    region = values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION")
    if region:
        conf[_S3A + "endpoint.region"] = region
    return conf


def check_s3_conf(given: dict, environ: Mapping[str, str]) -> None:
    """Keys given as spark.hadoop.fs.s3a.* without the environment's match would reach Spark's
    connector and not fsspec, which writes dermspark's own files: refused, naming the fix."""
    for key, variable in (("access.key", "AWS_ACCESS_KEY_ID"), ("secret.key", "AWS_SECRET_ACCESS_KEY")):
        if given.get(_S3A + key) and given[_S3A + key] != environ.get(variable):
            raise DermsparkError(
                f"{_S3A}{key} is set but {variable} is not (or differs): give S3 credentials as the "
                "AWS_* environment variables of the submitting shell (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL); dermspark hands them to Spark and to every "
                "executor"
            )


def show_progress(environ: Mapping[str, str], interactive: bool) -> bool:
    """Spark's console progress bar: for a person at a terminal, not in CI logs."""
    return interactive and not environ.get("CI")


def spark_session(app_name: str):
    import sys

    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    from dermspark.tracking.server import QUIET

    given = dict(SparkConf().getAll())  # what spark-submit was given (--conf, the profile)
    check_s3_conf(given, os.environ)
    builder = SparkSession.builder.appName(app_name)
    if "spark.ui.showConsoleProgress" not in given:
        builder = builder.config(
            "spark.ui.showConsoleProgress", str(show_progress(os.environ, sys.stderr.isatty())).lower()
        )
    # MLflow on executors (training's rank 0, scoring's bundle fetch) is as quiet as on the driver.
    for name, value in QUIET.items():
        builder = builder.config(f"spark.executorEnv.{name}", os.environ.get(name, value))
    for key, value in s3_conf(os.environ).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
