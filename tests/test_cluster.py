"""The jobs on a real Spark standalone cluster on 127.0.0.1 (a master and two workers, each its
own JVM, started by scripts/cluster.sh), and the checks that fail fast instead of waiting."""

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import ROOT, ok
from dermspark.serve.load import free_port

CLUSTER = str(ROOT / "scripts" / "cluster.sh")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two workers of one core and 2 GB each; stopped however the tests end."""
    state = tmp_path_factory.mktemp("cluster")
    # Jobs ship .venv packed (spark-submit.sh does for any non-local master); gzip level 0
    # unpacks fastest on one machine.
    env = {**os.environ, "DERMSPARK_CLUSTER_DIR": str(state), "DERMSPARK_PACK_LEVEL": "0"}
    port, webui = free_port(), free_port()
    started = subprocess.run([CLUSTER, "start", "--workers", "2", "--cores", "1", "--memory", "2g",
                              "--port", str(port), "--webui-port", str(webui)],
                             capture_output=True, text=True, env=env, timeout=120, check=False)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"spark://127.0.0.1:{port}", env, state
    finally:
        subprocess.run([CLUSTER, "stop"], env=env, timeout=60, check=False)


def submit(env, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "spark-submit.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def test_ingest_train_score_on_the_cluster(cluster, tmp_path):
    from dermspark.synthetic import make_synthetic_ham10000

    master, env, state = cluster
    # Shipping the packed environment costs each application about a minute here (the driver
    # serves 1.6 GB to every executor, which unpacks it), and spark-submit.sh ships it the same
    # way for every job: training ships it, as the hardest case (Horovod's ranks are new Python
    # processes that see the code only through PYTHONPATH); ingest and scoring use .venv.
    local_env = {**env, "DERMSPARK_PACK_ENV": "no"}
    make_synthetic_ham10000(str(tmp_path / "archive"), images=120, seed=5)
    ok(submit(local_env, "ingest", "--master", master, "--input", str(tmp_path / "archive"),
              "--output", str(tmp_path / "dataset")))
    ok(submit(env, "train", "--master", master, "--dataset", str(tmp_path / "dataset"),
              "--output", str(tmp_path / "model"), "--epochs", "2", "--num-proc", "2"))
    ok(submit(local_env, "score", "--master", master, "--model", str(tmp_path / "model" / "model"),
              "--input", str(tmp_path / "archive"), "--output", str(tmp_path / "scores"), "--glob", "*.jpg"))
    manifest = json.loads((tmp_path / "dataset" / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["written"] + manifest["rejected"]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2
    (run,) = (tmp_path / "scores" / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["inputs"] == summary["scored"] + summary["errors"] == len(list((tmp_path / "archive").rglob("*.jpg")))
    # Three applications, in order; training's executors ran the packed environment Spark
    # unpacked in their folders, and only training shipped it.
    ingest_app, train_app, score_app = sorted((state / "work").glob("app-*"))
    executors = list(train_app.iterdir())
    assert len(executors) == 2
    assert all((path / "environment" / "bin" / "python").exists() for path in executors)
    assert not list(ingest_app.glob("*/environment")) and not list(score_app.glob("*/environment"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--conf", "spark.executor.memory=4g"), "no worker offers that much"),
        (("--conf", "spark.executor.cores=2"), "no worker has that many cores"),
        (("--num-proc", "3"), "can give at most 2"),
    ],
)
def test_resources_the_cluster_cannot_give_fail_fast(cluster, tmp_path, args, message):
    master, env, _ = cluster
    # The checks run before any executor needs the packed environment, and shipping it would
    # have the driver copy and unpack it first (Spark does for every --archives entry).
    env = {**env, "DERMSPARK_PACK_ENV": "no"}
    started = time.monotonic()
    result = submit(env, "train", "--master", master, "--dataset", str(tmp_path / "none"),
                    "--output", str(tmp_path / "model"), *args, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert message in output and "Traceback" not in output
    assert time.monotonic() - started < 60


def test_a_master_that_does_not_answer_fails_at_once(tmp_path):
    started = time.monotonic()
    result = submit(os.environ, "score", "--master", f"spark://127.0.0.1:{free_port()}", "--model", "m",
                    "--input", "i", "--output", str(tmp_path / "o"), timeout=60)
    assert result.returncode == 2
    assert "does not answer" in result.stderr
    assert time.monotonic() - started < 20


def _kill_worker(state, index: int) -> None:
    """SIGKILL a worker JVM, as a machine failure would; its executor notices and exits."""
    os.kill(int((state / f"worker-{index}.pid").read_text()), signal.SIGKILL)


def _checkpointed_epoch(store) -> int:
    try:
        return json.loads((store / "state.json").read_text()).get("epoch", 0)
    except (OSError, ValueError):
        return 0


def test_worker_lost_in_training_fails_clearly_then_resumes(spark, tmp_path_factory, tmp_path):
    """Its own cluster: a worker dies mid-training; the job ends with one message in bounded time,
    and a rerun with the same run id on a restarted cluster resumes at the next epoch."""
    from dermspark.ingest.pipeline import run_ingest
    from dermspark.settings import IngestSettings
    from dermspark.synthetic import make_synthetic_ham10000

    state = tmp_path_factory.mktemp("faulty-cluster")
    env = {**os.environ, "DERMSPARK_CLUSTER_DIR": str(state), "DERMSPARK_PACK_ENV": "no"}
    ports = ["--port", str(free_port()), "--webui-port", str(free_port())]
    master = f"spark://127.0.0.1:{ports[1]}"
    make_synthetic_ham10000(str(tmp_path / "archive"), images=120, seed=6)
    try:
        # The dataset comes from local mode (ingest on the cluster is tested above); the cluster
        # trains on it, as on a store every machine reaches.
        run_ingest(spark, IngestSettings(input=str(tmp_path / "archive"), output=str(tmp_path / "dataset")))
        ok(subprocess.run([CLUSTER, "start", *ports], env=env, capture_output=True, text=True, timeout=120))
        command = [str(ROOT / "spark-submit.sh"), "train", "--master", master, "--dataset", str(tmp_path / "dataset"),
                   "--output", str(tmp_path / "model"), "--epochs", "8", "--num-proc", "2", "--run-id", "lost"]
        store = tmp_path / "model.checkpoints" / "lost"
        job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + 300
        while _checkpointed_epoch(store) < 1:
            assert job.poll() is None and time.monotonic() < deadline, "training never checkpointed"
            time.sleep(0.2)
        _kill_worker(state, 2)
        killed = time.monotonic()
        output, _ = job.communicate(timeout=300)
        assert job.returncode == 2, output[-3000:]
        assert "a training process ended before training did" in output and "--run-id lost" in output
        assert time.monotonic() - killed < 180
        reached = _checkpointed_epoch(store)
        assert 1 <= reached < 8

        subprocess.run([CLUSTER, "stop"], env=env, timeout=60, check=False)
        ok(subprocess.run([CLUSTER, "start", *ports], env=env, capture_output=True, text=True, timeout=120))
        ok(subprocess.run(command, capture_output=True, text=True, env=env, timeout=600))
        metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
        assert metrics["resumed_from"]["epoch"] == reached
        assert len(metrics["history"]["loss"]) == 8
    finally:
        subprocess.run([CLUSTER, "stop"], env=env, timeout=60, check=False)


def test_worker_lost_in_scoring_is_retried_and_every_input_scored_once(spark, cluster, pipeline, real_data,
                                                                       tmp_path):
    """Spark reruns the lost executor's tasks on the other one; the run has each input once.
    Runs last on the shared cluster: it leaves one worker."""
    master, env, state = cluster
    env = {**env, "DERMSPARK_PACK_ENV": "no"}
    output = tmp_path / "scores"
    job = subprocess.Popen(
        [str(ROOT / "spark-submit.sh"), "score", "--master", master, "--model", str(pipeline / "model" / "model"),
         "--input", str(real_data / "ham10000-200x150"), "--glob", "*.jpg", "--output", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    deadline = time.monotonic() + 300
    while not list(output.glob("_staging/*/rows/_temporary")):
        assert job.poll() is None and time.monotonic() < deadline, "scoring never started writing"
        time.sleep(0.2)
    time.sleep(3)  # well into the tasks
    _kill_worker(state, 2)
    log, _ = job.communicate(timeout=600)
    assert job.returncode == 0, log[-3000:]
    (run,) = (output / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["inputs"] == summary["scored"] == 10_015
    rows = spark.read.parquet(str(output / "predictions"))
    assert rows.count() == rows.select("path").distinct().count() == 10_015
