"""Shared fixtures: one local Spark session per test session, synthetic and real archives."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    # Executors must run the same interpreter as the tests, the one holding the stack.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("dermspark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def synthetic_archive(tmp_path_factory):
    from dermspark.synthetic import make_synthetic_ham10000

    return make_synthetic_ham10000(str(tmp_path_factory.mktemp("synthetic")), images=60, seed=3)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data, named by DERMSPARK_DATA (.ci/run sets it). A set variable naming a missing
    folder fails; an unset one skips, with the reason in the summary, for clones without it."""
    value = os.environ.get("DERMSPARK_DATA")
    if not value:
        pytest.skip("DERMSPARK_DATA is not set; .ci/run sets it to ../shared/data")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"DERMSPARK_DATA={value} names a folder that does not exist")
    return path
