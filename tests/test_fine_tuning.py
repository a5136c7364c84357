"""train --init-from: classes mapped or refused, weights carried, the two fine-tuning stages, and
the parent recorded in the bundle and MLflow."""

import json

import numpy as np
import pytest
from dermspark import DermsparkError
from dermspark.bundle import load_bundle
from dermspark.ingest.pipeline import run_ingest
from dermspark.models import create_model
from dermspark.settings.ingest import IngestSettings
from dermspark.settings.train import TrainSettings
from dermspark.synthetic import make_synthetic_external
from dermspark.train.job import run_train
from dermspark.train.parent import carry_weights, class_map, fine_tune_stages
from dermspark.train.worker_config import StagePlan

HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def test_classes_map_by_name_or_are_refused():
    assert class_map(HAM, HAM) is None
    assert class_map(HAM, ["melanoma", "non_melanoma"]) == [[4], [0, 1, 2, 3, 5, 6]]
    isic = ["ak", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc"]
    assert class_map(isic, HAM)[0] == [0, 6]  # akiec from both ak and scc
    with pytest.raises(DermsparkError, match="no class of the bundle .* maps to the dataset's ak, scc"):
        class_map(HAM, isic)
    with pytest.raises(DermsparkError, match="cannot be mapped"):
        class_map(HAM, ["cats", "dogs"])


def test_weights_are_carried_and_a_merged_class_starts_with_its_parts_probability():
    parent = create_model("benbrahim_cnn", num_classes=7)
    child = create_model("benbrahim_cnn", num_classes=2)
    mapped = class_map(HAM, ["melanoma", "non_melanoma"])
    carry_weights(child, parent, mapped)
    for name in ("conv2d_1", "conv2d_4", "dense_1"):
        for got, wanted in zip(child.get_layer(name).get_weights(), parent.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, wanted)
    kernel, bias = parent.layers[-1].get_weights()
    child_kernel, child_bias = child.layers[-1].get_weights()
    np.testing.assert_allclose(child_kernel[:, 1], kernel[:, mapped[1]].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(child_bias[1], np.log(np.exp(bias[mapped[1]]).sum()), rtol=1e-6)


def test_fine_tuning_trains_the_head_then_everything_at_a_tenth_of_the_rate():
    stages = [StagePlan(epochs=25, learning_rate=1e-3)]
    head, every = fine_tune_stages(stages, TrainSettings(dataset="d", output="o", init_from="b"))
    assert (head.trainable, head.epochs, head.learning_rate) == ("head", 5, 1e-3)
    assert (every.trainable, every.epochs, every.learning_rate) == ("all", 10, pytest.approx(1e-4))
    only_head = fine_tune_stages(
        stages, TrainSettings(dataset="d", output="o", init_from="b", epochs=2, fine_tune_epochs=0)
    )
    assert [stage.trainable for stage in only_head] == ["head"]


@pytest.fixture(scope="module")
def clinic(spark, tmp_path_factory):
    """A hospital's own labeled images in HAM10000's classes, and the same in ISIC 2019's."""
    root = tmp_path_factory.mktemp("clinic")
    archive = make_synthetic_external(str(root / "archive"), images=40, seed=8, cast=(0.9, 1.0, 1.1))
    for space in ("ham10000", "isic2019"):
        run_ingest(
            spark,
            IngestSettings(
                input=archive.path, output=str(root / space), source="labels_csv", label_space=space, num_files=2
            ),
        )
    return root


def test_a_bundle_is_fine_tuned_on_a_hospitals_images(spark, pipeline, clinic, mlflow_server, tmp_path):
    parent_url = str(pipeline / "model" / "model")
    parent = load_bundle(parent_url)
    settings = {
        "dataset": str(clinic / "ham10000"),
        "init_from": parent_url,
        "batch_size": 8,
        "num_proc": 2,
        "mlflow_uri": mlflow_server,
        "experiment": "fine-tuning",
    }
    run_train(spark, TrainSettings(**settings, output=str(tmp_path / "head"), epochs=1, fine_tune_epochs=0))
    head = load_bundle(str(tmp_path / "head" / "model"))
    # The head alone trained: every other layer is the parent's, bit for bit; the head moved.
    for layer in parent.model.layers[:-1]:
        for got, wanted in zip(head.model.get_layer(layer.name).get_weights(), layer.get_weights(), strict=True):
            np.testing.assert_array_equal(got, wanted)
    assert not np.array_equal(head.model.layers[-1].get_weights()[0], parent.model.layers[-1].get_weights()[0])
    recorded = head.manifest.parent
    assert recorded["url"] == parent_url and recorded["model_sha256"] == parent.manifest.model_sha256
    assert recorded["class_map"] is None
    assert [stage["trainable"] for stage in head.manifest.training_settings["plan"]["stages"]] == ["head"]

    every = run_train(spark, TrainSettings(**settings, output=str(tmp_path / "all"), epochs=1, fine_tune_epochs=1))
    tuned = load_bundle(str(tmp_path / "all" / "model"))
    assert not np.array_equal(
        tuned.model.get_layer("conv2d_1").get_weights()[0], parent.model.get_layer("conv2d_1").get_weights()[0]
    )
    assert len(json.loads((tmp_path / "all" / "metrics.json").read_text())["stage_ends"]) == 2
    from mlflow import MlflowClient

    run = MlflowClient(mlflow_server).get_run(every.mlflow_run_id)
    assert run.data.tags["dermspark.parent"] == parent_url

    with pytest.raises(DermsparkError, match="no class of the bundle .* maps to the dataset's ak, scc"):
        run_train(spark, TrainSettings(**{**settings, "dataset": str(clinic / "isic2019")}, output=str(tmp_path / "x")))
    with pytest.raises(DermsparkError, match="is a benbrahim_cnn bundle: give --model benbrahim_cnn"):
        run_train(spark, TrainSettings(**settings, model="huber_cnn", output=str(tmp_path / "y")))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
