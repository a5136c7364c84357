"""Training through the real job: checks before Horovod starts, and a finished run rerun."""

import json
import os
import subprocess

import pytest
from conftest import ROOT
from dermspark import DermsparkError
from dermspark.ingest.pipeline import run_ingest
from dermspark.settings.ingest import IngestSettings
from dermspark.settings.train import TrainSettings
from dermspark.train.job import run_train


@pytest.fixture(scope="module")
def datasets(spark, synthetic_archive, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("training")
    made = {}
    for name, num_files in (("many_row_groups", 0), ("one_row_group", 1)):
        made[name] = work / name
        run_ingest(
            spark, IngestSettings(input=str(synthetic_archive.path), output=str(made[name]), num_files=num_files)
        )
    return made


def test_fewer_row_groups_than_processes_is_one_clear_error(spark, datasets, tmp_path):
    with pytest.raises(DermsparkError, match=r"1 row group\(s\), fewer than the 2 processes"):
        run_train(
            spark,
            TrainSettings(dataset=str(datasets["one_row_group"]), output=str(tmp_path / "m"), num_proc=2, epochs=1),
        )


def test_missing_weights_file_names_it_before_anything_starts(spark, datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    with pytest.raises(DermsparkError, match="put inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        run_train(
            spark,
            TrainSettings(
                dataset=str(datasets["many_row_groups"]),
                output=str(tmp_path / "m"),
                model="inception_resnet_v2_hitta",
                weights="imagenet",
            ),
        )
    with pytest.raises(DermsparkError, match="no pretrained base"):
        run_train(
            spark,
            TrainSettings(dataset=str(datasets["many_row_groups"]), output=str(tmp_path / "m"), weights="imagenet"),
        )


def test_a_misspelt_model_option_is_one_clear_error_before_horovod(spark, datasets, tmp_path):
    with pytest.raises(
        DermsparkError, match=r"benbrahim_cnn has no option 'colour_jitter'; its options: .*color_jitter"
    ):
        run_train(
            spark,
            TrainSettings(
                dataset=str(datasets["many_row_groups"]),
                output=str(tmp_path / "m"),
                model_options={"augment": True, "colour_jitter": True},
            ),
        )
    assert not (tmp_path / "m").exists()


def test_a_finished_run_rerun_trains_nothing_and_gives_the_same_figures(pipeline, s3_store, tmp_path):
    """The pipeline's run, rerun with its run id (its checkpoints are in S3): nothing is trained
    again, and the same final weights are evaluated and bundled again. (A run killed or a
    worker lost mid-training, and its resume, are tested on the cluster, test_cluster.py.)"""
    rerun = subprocess.run(
        [
            str(ROOT / "spark-submit.sh"),
            "train",
            "--dataset",
            str(pipeline / "dataset"),
            "--model",
            "benbrahim_cnn",
            "--output",
            str(tmp_path / "model"),
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
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **s3_store},
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Epoch " not in rerun.stdout + rerun.stderr
    again = json.loads((tmp_path / "model" / "metrics.json").read_text())
    first = json.loads((pipeline / "model" / "metrics.json").read_text())
    assert again["resumed_from"] == {"stage": 1, "epoch": 0, "finished": True}
    assert again["test"] == first["test"] and again["history"] == first["history"]


def test_each_rank_takes_the_cores_spark_gives_its_task_not_the_hosts(spark):
    from dermspark.cluster import rank_threads

    # local[2]: two ranks split the driver's two cores; one rank has both.
    assert rank_threads(spark, 2) == 1
    assert rank_threads(spark, 1) == 2
