"""Shared fixtures: one local Spark session per test session, synthetic and real archives."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark(s3_store):
    from dermspark.session import s3_conf
    from pyspark.sql import SparkSession

    # Executors must run the same interpreter as the tests, the one holding the stack.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("dermspark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
    )
    # As jobs do (dermspark.session): the test S3's variables reach every executor.
    for key, value in s3_conf(s3_store).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
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


@pytest.fixture(scope="session")
def s3_store() -> dict:
    """An S3 endpoint on 127.0.0.1 (moto's server, in this process) with one bucket, for stores
    that go through fsspec: the environment a job needs to reach it, which Horovod hands to every
    rank. No network: the endpoint is loopback and the credentials are moto's fakes."""
    from dermspark.serve.load import free_port
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3_filesystem(env).mkdir("dermspark")
    yield env
    server.stop()


@pytest.fixture(params=["file", "s3"])
def root(request, tmp_path, monkeypatch):
    """A folder URL on each kind of store, with the S3 environment set for this test."""
    if request.param == "file":
        return f"file://{tmp_path}/store"
    for name, value in request.getfixturevalue("s3_store").items():
        monkeypatch.setenv(name, value)
    return f"s3a://dermspark/storage-{tmp_path.name}"


def s3_filesystem(env: dict):
    """s3fs on the s3_store fixture's endpoint, for tests that look inside it."""
    import s3fs

    return s3fs.S3FileSystem(
        endpoint_url=env["AWS_ENDPOINT_URL"], key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"]
    )


SPARK_SUBMIT = str(ROOT / "spark-submit.sh")


def submit(*args: str, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """env: variables added to this process's environment for the job."""
    return subprocess.run(
        [SPARK_SUBMIT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """A real MLflow tracking server and registry on 127.0.0.1 (SQLite, an artifact folder),
    started and stopped by scripts/mlflow.sh as a user would."""
    from dermspark.serve.load import free_port

    env = {
        **os.environ,
        "DERMSPARK_MLFLOW_DIR": str(tmp_path_factory.mktemp("mlflow")),
        "DERMSPARK_MLFLOW_PORT": str(free_port()),
    }
    script = str(ROOT / "scripts" / "mlflow.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode == 0, started.stdout + started.stderr
    assert subprocess.run([script, "status"], env=env, capture_output=True, check=False).returncode == 0
    yield f"http://127.0.0.1:{env['DERMSPARK_MLFLOW_PORT']}"
    subprocess.run([script, "stop"], env=env, capture_output=True, timeout=60, check=False)


COMPILER = re.compile(r"^(c\+\+|g\+\+|gcc|cc|clang|clang\+\+|cpp|c89|c99)(-[\d.]+)?$|-g\+\+|-gcc")


def path_without_compiler(folder: Path) -> str:
    """A PATH of links to every program on this one except C and C++ compilers: a gateway
    machine that never built anything."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            program = os.path.join(directory, name)
            if not COMPILER.search(name) and os.access(program, os.X_OK) and not (folder / name).exists():
                (folder / name).symlink_to(program)
    return str(folder)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, s3_store, mlflow_server) -> Path:
    """ingest -> train -> score through spark-submit.sh on a synthetic archive with one broken
    file; the trained bundle also serves the scoring tests. Training keeps its checkpoints in
    S3 (s3a://dermspark/e2e), as a cluster whose data is local to it but whose store is not,
    and logs to the MLflow server, which registers its bundle as `lesions`. Every job submits
    with no compiler on PATH (PATH is written to submit-path.txt for test_submit.py)."""
    from dermspark.synthetic import make_synthetic_ham10000

    work = tmp_path_factory.mktemp("e2e")
    bare = {"PATH": path_without_compiler(work / "bin")}
    (work / "submit-path.txt").write_text(bare["PATH"])
    make_synthetic_ham10000(str(work / "archive"), images=240, seed=11)
    (work / "archive" / "HAM10000_images_part_2" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    ingest = ok(
        submit(
            "ingest",
            "--source",
            "ham10000",
            "--input",
            str(work / "archive"),
            "--output",
            str(work / "dataset"),
            env=bare,
        )
    )
    (work / "ingest.out").write_text(ingest)
    ok(
        submit(
            "train",
            "--dataset",
            str(work / "dataset"),
            "--model",
            "benbrahim_cnn",
            "--output",
            str(work / "model"),
            "--epochs",
            "10",
            "--num-proc",
            "2",
            "--batch-size",
            "16",
            "--store",
            "s3a://dermspark/e2e",
            "--run-id",
            "pipeline",
            "--mlflow-uri",
            mlflow_server,
            "--register",
            "lesions",
            env={**s3_store, **bare},
        )
    )
    scored = ok(
        submit(
            "score",
            "--model",
            str(work / "model" / "model"),
            "--input",
            str(work / "archive"),
            "--output",
            str(work / "scores"),
            "--glob",
            "*.jpg",
            env=bare,
        )
    )
    (work / "score.out").write_text(scored)
    return work


@pytest.fixture(scope="session")
def archive_jpegs(pipeline) -> list[Path]:
    """Eight good JPEGs of the pipeline's archive, the ones its scoring run predicted."""
    return sorted((pipeline / "archive" / "HAM10000_images_part_1").glob("*.jpg"))[:8]


def kill_when(job: subprocess.Popen, ready, what: str, timeout: float = 300) -> None:
    """SIGKILLs a job started with start_new_session (spark-submit, its JVM and its Python
    processes) as soon as ready() holds; fails if the job ends first or never gets there."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert job.poll() is None, f"the job ended before it {what}"
            assert time.monotonic() < deadline, f"the job never {what}"
            time.sleep(0.2)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()


# Beside the cluster tests on their worker: files that need neither the end-to-end pipeline
# nor much else the other worker builds, so that the two workers take about as long (the
# cluster's worker took ~700 s, the other ~900 s, before cross-validation moved).
WITH_THE_CLUSTER = ("test_cluster.py::", "test_cross_validation.py::")


def pytest_xdist_make_scheduler(config, log):
    """scripts/test.sh runs two xdist workers: the cluster tests go to one together (one cluster
    start, in their order) with WITH_THE_CLUSTER, everything else to the other (one local Spark
    session, one end-to-end pipeline). xdist's own --dist loadgroup did not group tests under
    pytest 9."""
    from xdist.scheduler import LoadScopeScheduling

    class ClusterApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "cluster" if any(name in nodeid for name in WITH_THE_CLUSTER) else "local"

    return ClusterApart(config, log)
