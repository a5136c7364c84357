"""Training through the real job: checks before Horovod starts, and a killed run that resumes."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT
from dermspark import DermsparkError
from dermspark.ingest.pipeline import run_ingest
from dermspark.settings import IngestSettings, TrainSettings
from dermspark.train.driver import run_train
from dermspark.train.plan import cosine_multiplier


@pytest.fixture(scope="module")
def datasets(spark, synthetic_archive, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("training")
    made = {}
    for name, num_files in (("many_row_groups", 0), ("one_row_group", 1)):
        made[name] = work / name
        run_ingest(spark, IngestSettings(input=str(synthetic_archive.path), output=str(made[name]),
                                         num_files=num_files))
    return made


def test_fewer_row_groups_than_processes_is_one_clear_error(spark, datasets, tmp_path):
    with pytest.raises(DermsparkError, match=r"1 row group\(s\), fewer than the 2 processes"):
        run_train(spark, TrainSettings(dataset=str(datasets["one_row_group"]), output=str(tmp_path / "m"),
                                       num_proc=2, epochs=1))


def test_missing_weights_file_names_it_before_anything_starts(spark, datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    with pytest.raises(DermsparkError, match="put inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        run_train(spark, TrainSettings(dataset=str(datasets["many_row_groups"]), output=str(tmp_path / "m"),
                                       model="inception_resnet_v2_hitta", weights="imagenet"))
    with pytest.raises(DermsparkError, match="no pretrained base"):
        run_train(spark, TrainSettings(dataset=str(datasets["many_row_groups"]), output=str(tmp_path / "m"),
                                       weights="imagenet"))


def test_a_misspelt_model_option_is_one_clear_error_before_horovod(spark, datasets, tmp_path):
    with pytest.raises(DermsparkError, match=r"benbrahim_cnn has no option 'colour_jitter'; its options: .*color_jitter"):
        run_train(spark, TrainSettings(dataset=str(datasets["many_row_groups"]), output=str(tmp_path / "m"),
                                       model_options={"augment": True, "colour_jitter": True}))
    assert not (tmp_path / "m").exists()


def _state(store: Path) -> dict:
    try:
        return json.loads((store / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def test_killed_run_resumes_at_the_next_epoch(datasets, tmp_path):
    output, store = tmp_path / "model", tmp_path / "model.checkpoints" / "r1"
    command = [str(ROOT / "spark-submit.sh"), "train", "--dataset", str(datasets["many_row_groups"]),
               "--output", str(output), "--epochs", "4", "--batch-size", "16", "--run-id", "r1",
               "--cache-mb", "0",  # the streaming reader; the other training tests cache
               "--lr-schedule", "cosine", "--cycle-time-ms", "5"]
    # Its own process group, so the kill reaches spark-submit, the JVM and every Horovod rank.
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while _state(store).get("epoch", 0) < 1 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    killed_at = _state(store)["epoch"]
    assert 1 <= killed_at < 4, "the run must be killed mid-training for this test to mean anything"
    assert not output.exists()  # nothing half-written at the output

    second = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stdout[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["resumed_from"] == {"stage": 0, "epoch": killed_at, "finished": False}
    assert len(metrics["history"]["loss"]) == 4  # killed_at epochs from the first run, the rest now
    assert metrics["horovod_cycle_time_ms"] == 5.0  # the flag reached the ranks
    assert metrics["ended_on"] == [{"stage": 0, "epoch": 4, "by": "last epoch"}]
    # The epoch-end metric (Keras, averaged over ranks) and the final evaluation (scikit-learn,
    # rank 0) measure the same weights on the same validation images.
    assert metrics["history"]["val_balanced_accuracy"][-1] == pytest.approx(
        metrics["validation"]["balanced_accuracy"], abs=1e-6)
    log = second.stdout + second.stderr  # Horovod relays the ranks' output on stderr
    assert f"Epoch {killed_at + 1}/4" in log and "Epoch 1/4" not in log
    # The rate each epoch ended on, across the kill: warmup to Adam's 1e-3 times 2 processes by
    # the end of epoch 3, then the cosine down towards 0 within epoch 4, batch by batch.
    steps = json.loads((output / "settings.json").read_text())["plan"]["steps_per_epoch"]
    rates = metrics["history"]["learning_rate"]
    assert len(rates) == 4 and rates[0] < rates[1] < rates[2]
    assert rates[2] == pytest.approx(2e-3, rel=1e-5)
    assert rates[3] == pytest.approx(2e-3 * cosine_multiplier(3 + (steps - 1) / steps, start=3, end=4), rel=1e-4)
    for name in ("report.md", "curves.png", "confusion_matrix_test.png", "model/manifest.json"):
        assert (output / name).is_file(), name

    # A finished run rerun: nothing trained again, the same final weights evaluated again.
    third = subprocess.run([*command, "--mode", "overwrite"], capture_output=True, text=True, timeout=600,
                           check=False)
    assert third.returncode == 0, third.stdout[-3000:]
    again = json.loads((output / "metrics.json").read_text())
    assert "Epoch " not in third.stdout + third.stderr
    assert again["test"] == metrics["test"]
