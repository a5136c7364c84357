"""The jobs on a real Spark standalone cluster on 127.0.0.1 (a master and two workers, each its
own JVM, started by scripts/cluster.sh) whose workers share no disk with the driver, and the
checks that fail fast instead of waiting."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, kill_when, ok, s3_filesystem
from dermspark.serve.load import free_port

CLUSTER = str(ROOT / "scripts" / "cluster.sh")


SECRET = "dermspark-test-secret-4f1c"  # a secret no output or log may show


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_store):
    """Two workers of one core and 2 GB each, each in its own mount namespace where this
    checkout, /tmp and HOME are empty (scripts/isolate.sh): executors see none of the driver's
    files. The nodes share what real ones share: the test S3 (moto's server on 127.0.0.1) and
    one folder standing for a network mount. Stopped however the tests end."""
    state = tmp_path_factory.mktemp("cluster")
    shared = tmp_path_factory.mktemp("network-mount")
    # Jobs ship .venv packed (spark-submit.sh does for any non-local master); gzip level 0
    # unpacks fastest on one machine. S3 credentials the one way (dermspark.session).
    env = {**os.environ, **s3_store, "AWS_SECRET_ACCESS_KEY": SECRET,
           "DERMSPARK_CLUSTER_DIR": str(state), "DERMSPARK_PACK_LEVEL": "0"}
    port, webui = free_port(), free_port()
    started = subprocess.run([CLUSTER, "start", "--workers", "2", "--cores", "1", "--memory", "2g",
                              "--port", str(port), "--webui-port", str(webui), "--isolated", "--share", str(shared)],
                             capture_output=True, text=True, env=env, timeout=120, check=False)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield Cluster(f"spark://127.0.0.1:{port}", env, state, shared)
    finally:
        subprocess.run([CLUSTER, "stop"], env=env, timeout=60, check=False)


@dataclass
class Cluster:
    master: str
    env: dict
    state: Path
    shared: Path

    def worker_pid(self, index: int) -> int:
        return int((self.state / f"worker-{index}.pid").read_text())


def submit(env, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "spark-submit.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def _s3_json(s3_store, url: str) -> dict:
    return json.loads(s3_filesystem(s3_store).cat(url.replace("s3a://", "").replace("s3://", "")))


def _s3_state(s3_store, store: str) -> dict:
    try:
        return _s3_json(s3_store, store + "/state.json")
    except (OSError, ValueError):
        return {}


def _inception_weights(path: Path) -> None:
    """A weights file of the same architecture, built with weights=None: real ImageNet weights
    cannot be downloaded here. Saved in a child process, which frees its memory on exit."""
    script = ("import sys; from tensorflow import keras; keras.applications.InceptionResNetV2("
              "include_top=False, weights=None, input_shape=(299, 299, 3)).save_weights(sys.argv[1])")
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, capture_output=True, timeout=300)


def test_a_cluster_whose_nodes_share_no_disk(cluster, s3_store, tmp_path):
    """ingest (archive on the network mount, dataset to S3) -> train benbrahim_cnn to S3 with
    checkpoints on S3, killed and resumed -> the two-stage Inception recipe with weights that
    only the driver has -> score a bundle on S3 into the network mount; and a driver-local
    output fails fast. tmp_path is the driver's own disk: the workers cannot see it."""
    from dermspark.synthetic import make_synthetic_ham10000

    master, env, shared = cluster.master, cluster.env, cluster.shared
    lake = f"s3a://dermspark/isolated-{tmp_path.name}"
    make_synthetic_ham10000(str(shared / "archive"), images=120, seed=5)
    ok(submit(env, "ingest", "--master", master, "--input", str(shared / "archive"),
              "--output", f"{lake}/dataset", "--sizes", "75x100,299x299"))
    manifest = _s3_json(s3_store, f"{lake}/dataset/manifest.json")
    assert manifest["inputs"] == manifest["written"] + manifest["rejected"] and manifest["written"] > 100

    # Killed once the first epoch's checkpoint is on S3; the rerun resumes from it.
    train = [str(ROOT / "spark-submit.sh"), "train", "--master", master, "--dataset", f"{lake}/dataset",
             "--output", f"{lake}/model", "--epochs", "3", "--num-proc", "2", "--run-id", "iso"]
    store = f"{lake}/model.checkpoints/iso"
    first = subprocess.Popen(train, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    kill_when(first, lambda: _s3_state(s3_store, store).get("epoch", 0) >= 1, "checkpointed an epoch", timeout=400)
    killed_at = _s3_state(s3_store, store)["epoch"]
    assert 1 <= killed_at < 3
    s3 = s3_filesystem(s3_store)
    assert not s3.exists(f"{lake}/model".replace("s3a://", ""))  # nothing at the final path
    ok(submit(env, *train[1:]))
    metrics = _s3_json(s3_store, f"{lake}/model/metrics.json")
    assert metrics["resumed_from"]["epoch"] == killed_at and len(metrics["history"]["loss"]) == 3
    assert metrics["checkpoints"] == store

    # The Inception recipe's two stages, briefly: a few capped images an epoch.
    weights = tmp_path / "inception_notop.h5"
    _inception_weights(weights)
    ok(submit(env, "train", "--master", master, "--dataset", f"{lake}/dataset", "--model",
              "inception_resnet_v2_benedetti", "--weights", str(weights), "--epochs", "1", "--fine-tune-epochs", "1",
              "--imbalance", "cap", "--cap-per-class", "2", "--batch-size", "2", "--num-proc", "2",
              "--output", str(shared / "inception"), timeout=900))
    # The ranks built the base from the shipped copy (a missing one is an error in every rank).
    inception = json.loads((shared / "inception" / "metrics.json").read_text())
    assert inception["stage_ends"] == [1, 2]
    assert (shared / "inception" / "model" / "manifest.json").is_file()

    scored = ok(submit(env, "score", "--master", master, "--model", f"{lake}/model/model",
                       "--input", str(shared / "archive"), "--output", str(shared / "scores"), "--glob", "*.jpg"))
    (run,) = (shared / "scores" / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["inputs"] == summary["scored"] + summary["errors"] == len(list((shared / "archive").rglob("*.jpg")))
    # Each worker fetched the bundle from S3 into its own disk's cache, named by the model's hash.
    digest = _s3_json(s3_store, f"{lake}/model/model/manifest.json")["model_sha256"]
    cached = [Path(f"/proc/{cluster.worker_pid(index)}/root/tmp/dermspark-bundles/{digest}/model.keras")
              for index in (1, 2)]
    assert any(path.is_file() for path in cached)
    assert not Path(f"/tmp/dermspark-bundles/{digest}").exists()  # not the driver's

    started = time.monotonic()
    local = submit(env, "train", "--master", master, "--dataset", f"{lake}/dataset",
                   "--output", str(tmp_path / "model"), "--num-proc", "2")
    assert local.returncode == 2, local.stdout[-2000:] + local.stderr[-2000:]
    assert f"--output {tmp_path / 'model'}" in local.stderr and "executors cannot see" in local.stderr
    assert "Traceback" not in local.stderr
    assert time.monotonic() - started < 120
    assert not (tmp_path / "model").exists() and not list(tmp_path.glob(".dermspark-probe-*"))

    # No secret in any output or log.
    texts = [scored, local.stdout, local.stderr]
    texts += [path.read_text(errors="replace") for path in shared.rglob("*.json")]
    texts += [s3.cat(path).decode(errors="replace") for path in s3.find(lake.replace("s3a://", ""))
              if path.endswith(".json")]
    texts += [path.read_text(errors="replace") for path in cluster.state.glob("*.log")]
    assert texts and not [text for text in texts if SECRET in text]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--conf", "spark.executor.memory=4g"), "no worker offers that much"),
        (("--conf", "spark.executor.cores=2"), "no worker has that many cores"),
        (("--num-proc", "3"), "can give at most 2"),
    ],
)
def test_resources_the_cluster_cannot_give_fail_fast(cluster, tmp_path, args, message):
    master, env = cluster.master, cluster.env
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


def test_worker_lost_in_scoring_is_retried_and_every_input_scored_once(spark, cluster, pipeline, real_data):
    """Spark reruns the lost executor's tasks on the other one; the run has each input once.
    Runs last on the shared cluster: it leaves one worker. The bundle and the predictions are on
    the network mount, the real data where every node sees it."""
    import shutil

    bundle = cluster.shared / "lost-bundle"
    shutil.copytree(pipeline / "model" / "model", bundle)
    output = cluster.shared / "lost-scores"
    job = subprocess.Popen(
        [str(ROOT / "spark-submit.sh"), "score", "--master", cluster.master, "--model", str(bundle),
         "--input", str(real_data / "ham10000-200x150"), "--glob", "*.jpg", "--output", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cluster.env,
    )
    deadline = time.monotonic() + 400
    while not list(output.glob("_staging/*/rows/_temporary")):
        assert job.poll() is None and time.monotonic() < deadline, "scoring never started writing"
        time.sleep(0.2)
    time.sleep(3)  # well into the tasks
    _kill_worker(cluster.state, 2)
    log, _ = job.communicate(timeout=600)
    assert job.returncode == 0, log[-3000:]
    (run,) = (output / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["inputs"] == summary["scored"] == 10_015
    rows = spark.read.parquet(str(output / "predictions"))
    assert rows.count() == rows.select("path").distinct().count() == 10_015
