"""The jobs on a real Spark standalone cluster on 127.0.0.1 (a master and two workers, each its
own JVM, started by scripts/cluster.sh) whose workers share no disk with the driver, and the
checks that fail fast instead of waiting."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, ok, s3_filesystem
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
    # One application's executors unpack the environment archive from the cluster's storage
    # (--env-archive), as on a real cluster: uploaded once by pack_env.py --upload, then served over
    # HTTP on 127.0.0.1 (Spark fetches http:// archives itself; its S3A connector is not installed).
    # S3 credentials the one way (dermspark.session).
    published = state / "published"
    upload = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "pack_env.py"), "--upload", str(published)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert upload.returncode == 0, upload.stderr[-2000:]
    archive_port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(published), str(archive_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    archive = f"http://127.0.0.1:{archive_port}/{Path(upload.stdout.strip()).name}"
    # The other applications run it unpacked once on the network mount (--env-dir): each
    # application unpacking 0.6 GB on the driver and on each executor took most of these tests.
    unpacked = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            str(ROOT / "scripts" / "pack_env.py"),
            "--unpack",
            str(shared / "envs"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert unpacked.returncode == 0, unpacked.stderr[-2000:]
    env = {
        **os.environ,
        **s3_store,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "DERMSPARK_CLUSTER_DIR": str(state),
        "DERMSPARK_ENV_DIR": unpacked.stdout.strip(),
        "DERMSPARK_ENV_ARCHIVE": "",
    }
    port, webui = free_port(), free_port()
    started = subprocess.run(
        [
            CLUSTER,
            "start",
            "--workers",
            "2",
            "--cores",
            "1",
            "--memory",
            "2g",
            "--port",
            str(port),
            "--webui-port",
            str(webui),
            "--isolated",
            "--share",
            str(shared),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield Cluster(f"spark://127.0.0.1:{port}", env, state, shared, archive)
    finally:
        subprocess.run([CLUSTER, "stop"], env=env, timeout=60, check=False)
        server.terminate()
        # Executors' folders hold unpacked environments: gigabytes pytest would keep.
        for folder in [state / "work", *state.glob("local-*"), shared / "envs"]:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Cluster:
    master: str
    env: dict
    state: Path
    shared: Path
    archive: str

    def with_archive(self) -> dict:
        """The environment for an application whose executors fetch and unpack the archive."""
        return {**self.env, "DERMSPARK_ENV_DIR": "", "DERMSPARK_ENV_ARCHIVE": self.archive}

    def worker_pid(self, index: int) -> int:
        return int((self.state / f"worker-{index}.pid").read_text())


def submit(env, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "spark-submit.sh"), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def _s3_json(s3_store, url: str) -> dict:
    return json.loads(s3_filesystem(s3_store).cat(url.replace("s3a://", "").replace("s3://", "")))


def _s3_state(s3_store, store: str) -> dict:
    try:
        return _s3_json(s3_store, store + "/state.json")
    except (OSError, ValueError):
        return {}


def _inception_weights(path: Path) -> subprocess.Popen:
    """A weights file of the same architecture, built with weights=None: real ImageNet weights
    cannot be downloaded here. Saved by a child process, started early so that it runs while
    the first jobs' executors unpack their environment, and which frees its memory on exit."""
    script = (
        "import sys; from tensorflow import keras; keras.applications.InceptionResNetV2("
        "include_top=False, weights=None, input_shape=(299, 299, 3)).save_weights(sys.argv[1])"
    )
    with open(f"{path}.log", "w") as log:  # a file, not a pipe that a chatty child could fill
        return subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=log, stderr=log)


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
    started = time.monotonic()
    result = submit(
        env,
        "train",
        "--master",
        master,
        "--dataset",
        str(tmp_path / "none"),
        "--output",
        str(tmp_path / "model"),
        *args,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert message in output and "Traceback" not in output
    assert time.monotonic() - started < 60


def test_a_master_that_does_not_answer_fails_at_once(tmp_path):
    started = time.monotonic()
    result = submit(
        os.environ,
        "score",
        "--master",
        f"spark://127.0.0.1:{free_port()}",
        "--model",
        "m",
        "--input",
        "i",
        "--output",
        str(tmp_path / "o"),
        timeout=60,
    )
    assert result.returncode == 2
    assert "does not answer" in result.stderr
    assert time.monotonic() - started < 20


def _kill_worker(cluster, index: int) -> None:
    """SIGKILL a worker JVM, as a machine failure would; its executor notices and exits."""
    os.kill(cluster.worker_pid(index), signal.SIGKILL)


def _restart_worker(cluster, index: int) -> None:
    ok(
        subprocess.run(
            [CLUSTER, "restart-worker", str(index)], env=cluster.env, capture_output=True, text=True, timeout=300
        )
    )


def test_ingest_survives_a_worker_lost_mid_decode(cluster, real_data, tmp_path):
    """The whole 200x150 HAM10000 (10,015 images, copied to the network mount) ingested while a
    worker is killed as the first part file is committed: Spark recomputes the small tables whose
    blocks died with it (kept with their lineage, not as executor-local checkpoints) and reruns
    its decode tasks, and the dataset holds every image exactly once."""
    source, archive = real_data / "ham10000-200x150", cluster.shared / "ham-200x150"

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, archive, copy_function=link_or_copy)
    output = cluster.shared / "lost-worker-dataset"
    job = subprocess.Popen(
        [
            str(ROOT / "spark-submit.sh"),
            "ingest",
            "--master",
            cluster.master,
            "--input",
            str(archive),
            "--output",
            str(output),
            "--num-files",
            "16",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cluster.env,
    )
    deadline = time.monotonic() + 400
    while not list(cluster.shared.glob(".lost-worker-dataset.tmp-*/images_75x100/part-*.parquet")):
        assert job.poll() is None and time.monotonic() < deadline, "ingest never wrote a part"
        time.sleep(0.1)
    try:
        _kill_worker(cluster, 2)
        said, _ = job.communicate(timeout=600)
        assert job.returncode == 0, said[-3000:]
        manifest = json.loads((output / "manifest.json").read_text())
        assert manifest["inputs"] == manifest["written"] == 10_015 and manifest["rejected"] == 0
        ids = pq.read_table(output / "images_75x100", columns=["image_id"]).column("image_id").to_pylist()
        assert len(ids) == len(set(ids)) == 10_015
        # The layout asked for survives the retried tasks: 16 parts, no leftovers of killed attempts.
        assert len(list((output / "images_75x100").glob("part-*.parquet"))) == 16
        assert not list((output / "images_75x100").glob(".part-*"))
    finally:
        if job.poll() is None:
            job.kill()
        _restart_worker(cluster, 2)
        shutil.rmtree(archive, ignore_errors=True)


# Every job on a cluster whose workers cannot see the driver's files: one scenario a test, over
# module fixtures that run each job once. They run last on the cluster: the worker losses would
# disturb the other tests. What each job printed is kept for the last test, which looks for the
# secret in all of it.


@pytest.fixture(scope="module")
def printed() -> list[str]:
    return []


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """Started before the first job, so that it runs while executors unpack their environment."""
    path = tmp_path_factory.mktemp("weights") / "inception_notop.h5"
    process = _inception_weights(path)
    yield path, process
    if process.poll() is None:
        process.kill()


@dataclass
class Isolated:
    lake: str  # on the test S3, which every node reaches
    ingested: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def isolated(cluster, s3_store, inception_weights, printed, tmp_path_factory):
    """A synthetic archive on the network mount ingested to S3 by an application whose executors
    fetch the environment archive from the cluster's storage and unpack it (Spark's --archives),
    as on a cluster with no shared mount; the later applications run it unpacked."""
    from dermspark.synthetic import make_synthetic_ham10000

    lake = f"s3a://dermspark/isolated-{tmp_path_factory.mktemp('lake').name}"
    make_synthetic_ham10000(str(cluster.shared / "archive"), images=120, seed=5)
    ingested = submit(
        cluster.with_archive(),
        "ingest",
        "--master",
        cluster.master,
        "--input",
        str(cluster.shared / "archive"),
        "--output",
        f"{lake}/dataset",
        "--sizes",
        "75x100,299x299",
    )
    printed += [ingested.stdout, ingested.stderr]
    return Isolated(lake, ingested)


def test_ingest_from_the_network_mount_to_s3(isolated, s3_store):
    ok(isolated.ingested)
    manifest = _s3_json(s3_store, f"{isolated.lake}/dataset/manifest.json")
    assert manifest["inputs"] == manifest["written"] + manifest["rejected"] and manifest["written"] > 100


@dataclass
class Interrupted:
    train: list[str]  # the command, run twice
    store: str
    returncode: int  # of the run whose worker was lost
    output: str
    seconds_after_loss: float
    reached: int  # the epoch its checkpoint had reached
    left_an_output: bool
    resumed: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def interrupted(cluster, isolated, s3_store, mlflow_server, printed):
    """benbrahim_cnn trained to S3 with its checkpoints there, tracked in MLflow, a worker killed
    once the first epoch's checkpoint is on S3, then the same command again: with the streaming
    reader (--cache-mb 0), a cosine schedule, a weight average and a cycle time that must carry
    across the loss."""
    ok(isolated.ingested)
    lake = isolated.lake
    train = [
        str(ROOT / "spark-submit.sh"),
        "train",
        "--master",
        cluster.master,
        "--dataset",
        f"{lake}/dataset",
        "--output",
        f"{lake}/model",
        "--epochs",
        "4",
        "--num-proc",
        "2",
        "--run-id",
        "iso",
        "--cache-mb",
        "0",
        "--lr-schedule",
        "cosine",
        "--ema",
        "0.9",
        "--cycle-time-ms",
        "5",
        "--mlflow-uri",
        mlflow_server,
        "--register",
        "iso",
    ]
    store = f"{lake}/model.checkpoints/iso"
    job = subprocess.Popen(train, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cluster.env)
    try:
        deadline = time.monotonic() + 400
        while _s3_state(s3_store, store).get("epoch", 0) < 1:
            assert job.poll() is None and time.monotonic() < deadline, "training never checkpointed"
            time.sleep(0.2)
        _kill_worker(cluster, 2)
        killed = time.monotonic()
        output, _ = job.communicate(timeout=300)
        seconds = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
        _restart_worker(cluster, 2)
    reached = _s3_state(s3_store, store)["epoch"]
    left = s3_filesystem(s3_store).exists(f"{lake}/model".replace("s3a://", ""))
    resumed = submit(cluster.env, *train[1:])
    printed += [output, resumed.stdout, resumed.stderr]
    return Interrupted(train, store, job.returncode, output, seconds, reached, left, resumed)


def test_a_worker_lost_mid_training_ends_the_run_with_one_message(interrupted):
    """Named by its run id, in bounded time, with nothing at the final path."""
    assert interrupted.returncode == 2, interrupted.output[-3000:]
    assert "a training process ended before training did" in interrupted.output
    assert "--run-id iso" in interrupted.output
    assert interrupted.seconds_after_loss < 180
    assert 1 <= interrupted.reached < 4, "the worker must be lost mid-training for this test to mean anything"
    assert not interrupted.left_an_output


def test_the_rerun_resumes_from_the_checkpoint(interrupted, isolated, s3_store):
    resumed, lake = interrupted.resumed, isolated.lake
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    metrics = _s3_json(s3_store, f"{lake}/model/metrics.json")
    assert metrics["resumed_from"] == {"stage": 0, "epoch": interrupted.reached, "finished": False}
    assert len(metrics["history"]["loss"]) == 4 and metrics["checkpoints"] == interrupted.store
    assert metrics["horovod_cycle_time_ms"] == 5.0  # the flag reached the ranks
    assert metrics["ended_on"] == [{"stage": 0, "epoch": 4, "by": "last epoch"}]
    # The epoch-end metric (Keras, averaged over ranks) and the final evaluation (scikit-learn,
    # rank 0) measure the same weights, the average, on the same validation images.
    assert metrics["history"]["val_balanced_accuracy"][-1] == pytest.approx(
        metrics["validation"]["balanced_accuracy"], abs=1e-6
    )
    # The rate of each epoch's last step, across the loss: a warmup from Adam's 1e-3 to 1e-3
    # times 2 processes over 3 epochs, then the cosine down towards 0 within epoch 4, step by
    # step (Keras' CosineDecay, by the optimizer's step count, which the checkpoint kept).
    plan = _s3_json(s3_store, f"{lake}/model/settings.json")["plan"]
    steps = plan["steps_per_epoch"]
    # Each rank's TensorFlow threads: the one core its Spark task holds (spark.task.cpus).
    assert plan["threads_per_rank"] == 1
    rates = metrics["history"]["learning_rate"]
    assert len(rates) == 4 and rates[0] < rates[1] < rates[2]
    assert rates[2] == pytest.approx(1e-3 + 1e-3 * (3 * steps - 1) / (3 * steps), rel=1e-5)
    assert rates[3] == pytest.approx(2e-3 * (1 + math.cos(math.pi * (steps - 1) / steps)) / 2, rel=1e-4)
    s3 = s3_filesystem(s3_store)
    for name in ("report.md", "curves.png", "confusion_matrix_test.png", "model/manifest.json", "model/model.keras"):
        assert s3.exists(f"{lake}/model/{name}".replace("s3a://", "")), name


def test_the_resumed_run_goes_on_in_the_same_mlflow_run(interrupted, mlflow_server):
    """Rank 0 logged each epoch from an executor (the packed environment's MLflow client); the
    resumed run went on in the same MLflow run, each epoch once, and registered the model."""
    from mlflow import MlflowClient

    assert interrupted.resumed.returncode == 0, interrupted.resumed.stderr[-3000:]
    tracking = MlflowClient(mlflow_server)
    experiment = tracking.get_experiment_by_name("benbrahim_cnn").experiment_id
    (tracked,) = tracking.search_runs([experiment], "tags.`dermspark.run_id` = 'iso'")
    assert tracked.info.status == "FINISHED"
    assert sorted(point.step for point in tracking.get_metric_history(tracked.info.run_id, "loss")) == [0, 1, 2, 3]
    assert "models:/iso/1" in interrupted.resumed.stdout


def test_two_stages_with_weights_only_the_driver_has(cluster, isolated, inception_weights, printed):
    """Benedetti et al.'s two-stage recipe, briefly (an epoch each, of a few capped images): stage
    1 (SGD Nesterov, class weights, cap) then a second stage from stage 1's best checkpoint, each
    ending on its best validation epoch, with a base whose weights only the driver has."""
    ok(isolated.ingested)
    weights, making_weights = inception_weights
    assert making_weights.wait(timeout=300) == 0, Path(f"{weights}.log").read_text()[-2000:]
    inception = cluster.shared / "inception"
    trained = submit(
        cluster.env,
        "train",
        "--master",
        cluster.master,
        "--dataset",
        f"{isolated.lake}/dataset",
        "--model",
        "inception_resnet_v2_benedetti",
        "--weights",
        str(weights),
        "--epochs",
        "1",
        "--fine-tune-epochs",
        "1",
        "--imbalance",
        "class_weights,cap",
        "--cap-per-class",
        "2",
        "--batch-size",
        "2",
        "--num-proc",
        "2",
        "--run-id",
        "two",
        "--output",
        str(inception),
        timeout=900,
    )
    printed += [trained.stdout, trained.stderr]
    ok(trained)
    result = json.loads((inception / "metrics.json").read_text())
    assert result["stage_ends"] == [1, 2]
    assert [(end["stage"], end["by"]) for end in result["ended_on"]] == [(0, "best val_loss"), (1, "best val_loss")]
    settings = json.loads((inception / "settings.json").read_text())
    assert settings["plan"]["class_weights"] and settings["plan"]["imbalance"]["cap_per_class"] == 2
    # Only the final chosen checkpoint and the state remain in the store.
    store_two = cluster.shared / "inception.checkpoints" / "two"
    state = json.loads((store_two / "state.json").read_text())
    assert state["finished"] and state["start_from"].startswith(("best-stage1-", "stage1-"))
    # Beside them, the run's live TensorBoard logs.
    assert sorted(path.name for path in store_two.iterdir()) == sorted(
        [state["start_from"], "state.json", "tensorboard"]
    )
    bundle = json.loads((inception / "model" / "manifest.json").read_text())
    assert bundle["input_size"] == [299, 299] and bundle["metrics"]["test"]["count"] > 0


def test_an_output_the_executors_cannot_see_fails_fast(cluster, isolated, printed, tmp_path):
    """tmp_path is the driver's own disk."""
    started = time.monotonic()
    local = submit(
        cluster.env,
        "train",
        "--master",
        cluster.master,
        "--dataset",
        f"{isolated.lake}/dataset",
        "--output",
        str(tmp_path / "model"),
        "--num-proc",
        "2",
    )
    printed += [local.stdout, local.stderr]
    assert local.returncode == 2, local.stdout[-2000:] + local.stderr[-2000:]
    said = local.stdout + local.stderr
    assert f"--output {tmp_path / 'model'}" in said and "executors cannot see" in said
    assert "Traceback" not in said
    # Failed before any training: no Horovod process was started. The time is the application's
    # start (the environment unpacked on the driver and on each executor) and one probe task per
    # slot, not a timeout.
    assert "Horovod processes" not in said and "Epoch " not in said
    assert time.monotonic() - started < 300
    assert not (tmp_path / "model").exists() and not list(tmp_path.glob(".dermspark-probe-*"))


def test_scoring_by_the_registered_model_survives_a_lost_worker(
    cluster, interrupted, isolated, mlflow_server, s3_store, printed
):
    """Each worker fetches the registered model from the MLflow server into its own disk's cache,
    named by the model's hash. 4,000 inputs (links to the archive's images, on the network mount),
    so that a worker can be lost mid-run: Spark reruns its tasks, each input has one row."""
    from dermspark.bundle import cache_key
    from dermspark.manifests import BundleManifest

    assert interrupted.resumed.returncode == 0, "the registered model comes from the resumed training"
    shared = cluster.shared
    links, inputs = shared / "links", 4_000
    images = sorted((shared / "archive").rglob("*.jpg"))
    links.mkdir()
    for number in range(inputs):
        (links / f"ISIC_{number:07d}.jpg").symlink_to(images[number % len(images)])
    predictions = shared / "scores"
    job = subprocess.Popen(
        [
            str(ROOT / "spark-submit.sh"),
            "score",
            "--master",
            cluster.master,
            "--model",
            "models:/iso/1",
            "--mlflow-uri",
            mlflow_server,
            "--input",
            str(links),
            "--glob",
            "*.jpg",
            "--links",
            "follow",
            "--output",
            str(predictions),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cluster.env,
    )
    # Seen through each worker's own view of the files (/proc/PID/root).
    digest = cache_key(BundleManifest.from_dict(_s3_json(s3_store, f"{isolated.lake}/model/model/manifest.json")))
    cached = [
        Path(f"/proc/{cluster.worker_pid(index)}/root/tmp/dermspark-bundles/{digest}/model.keras") for index in (1, 2)
    ]
    try:
        deadline = time.monotonic() + 400
        while not all(path.is_file() for path in cached):
            assert job.poll() is None and time.monotonic() < deadline, "the workers never fetched the bundle"
            time.sleep(0.2)
        assert not Path(f"/tmp/dermspark-bundles/{digest}").exists()  # not on the driver's disk
        time.sleep(2)  # into the tasks
        _kill_worker(cluster, 2)
        scored, _ = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
        _restart_worker(cluster, 2)
    printed.append(scored)
    assert job.returncode == 0, scored[-3000:]
    (run,) = (predictions / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["inputs"] == summary["scored"] == inputs and summary["model_version"] == "iso/1"
    rows = pq.read_table(predictions / "predictions", columns=["path"]).column("path").to_pylist()
    assert len(rows) == len(set(rows)) == inputs


def test_no_secret_in_any_output_or_log(cluster, isolated, printed, s3_store):
    """What every job above printed, wrote as JSON, and the cluster's own logs: never the S3
    secret the jobs were given. Last in the module, after the jobs it reads."""
    s3 = s3_filesystem(s3_store)
    shared = cluster.shared
    texts = list(printed)
    texts += [
        path.read_text(errors="replace") for path in shared.rglob("*.json") if shared / "envs" not in path.parents
    ]
    texts += [
        s3.cat(path).decode(errors="replace")
        for path in s3.find(isolated.lake.replace("s3a://", ""))
        if path.endswith(".json")
    ]
    texts += [
        path.read_text(errors="replace")
        for path in [*cluster.state.glob("*.log"), *cluster.state.glob("work/*/*/std*")]
    ]
    assert len(printed) >= 10 and not [text for text in texts if SECRET in text]
