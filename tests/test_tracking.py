"""MLflow tracking, the model registry and TensorBoard, against a real MLflow server on 127.0.0.1
(scripts/mlflow.sh, SQLite). The pipeline fixture's training run logs to it and registers its
bundle as `lesions`; a run that resumes after a worker loss is tested on the cluster
(test_cluster.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

EPOCHS = 10  # the pipeline fixture's


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _pipeline_run(uri: str):
    client = _client(uri)
    experiment = client.get_experiment_by_name("benbrahim_cnn")
    runs = client.search_runs([experiment.experiment_id], "tags.`dermspark.run_id` = 'pipeline'")
    assert len(runs) == 1
    return client, runs[0]


@pytest.fixture(scope="module")
def champion(pipeline, mlflow_server) -> str:
    """The alias a hospital would move to promote a model, on the pipeline's version."""
    _client(mlflow_server).set_registered_model_alias("lesions", "champion", "1")
    return "models:/lesions@champion"


def test_a_training_run_logs_settings_epochs_artifacts_and_its_model(pipeline, mlflow_server):
    client, run = _pipeline_run(mlflow_server)
    metrics = json.loads((pipeline / "model" / "metrics.json").read_text())
    settings = json.loads((pipeline / "model" / "settings.json").read_text())
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model"] == "benbrahim_cnn" and params["run_id"] == "pipeline"
    assert params["plan.batch_size"] == "16"
    assert params["plan.steps_per_epoch"] == str(settings["plan"]["steps_per_epoch"])
    # One value per epoch run, at steps 0..n-1, as rank 0 logged them (or the driver filled in).
    assert len(metrics["history"]["loss"]) == EPOCHS
    for key in ("loss", "val_loss", "val_balanced_accuracy", "learning_rate"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(point.step for point in history) == list(range(EPOCHS)), key
        assert [point.value for point in sorted(history, key=lambda p: p.step)] == pytest.approx(
            metrics["history"][key], rel=1e-6
        )
    assert run.data.metrics["test_balanced_accuracy"] == pytest.approx(metrics["test"]["balanced_accuracy"])
    low, high = metrics["test"]["interval"]["balanced_accuracy"]
    assert (run.data.metrics["test_balanced_accuracy_low"], run.data.metrics["test_balanced_accuracy_high"]) == (
        pytest.approx(low),
        pytest.approx(high),
    )
    names = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "metrics.json", "settings.json", "curves.png", "confusion_matrix_test.png"} <= names
    version = client.get_model_version("lesions", "1")
    assert version.run_id == run.info.run_id


def test_the_registered_model_is_the_bundle_with_its_signature(pipeline, mlflow_server, tmp_path):
    import mlflow.artifacts

    location = _client(mlflow_server).get_model_version_download_uri("lesions", "1")
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=str(tmp_path), tracking_uri=mlflow_server
    )
    bundle = pipeline / "model" / "model"
    copied = Path(folder) / "artifacts" / "bundle"
    assert (copied / "model.keras").read_bytes() == (bundle / "model.keras").read_bytes()
    assert json.loads((copied / "manifest.json").read_text()) == json.loads((bundle / "manifest.json").read_text())
    from mlflow.models import Model

    model = Model.load(folder)
    manifest = json.loads((bundle / "manifest.json").read_text())
    [image] = model.signature.inputs.inputs
    assert image.type == np.dtype(np.uint8) and image.shape == (-1, *manifest["input_size"], 3)
    assert model.metadata["classes"] == manifest["classes"]


def test_the_mlflow_model_predicts_what_scoring_does(pipeline, mlflow_server, archive_jpegs, tmp_path):
    """mlflow.pyfunc.load_model on the registered version, given decoded pixels: the calibrated
    probabilities scoring gives for the same files by default, the model's own with
    calibration none, and one clear error for a calibration it does not know."""
    import mlflow.artifacts
    import mlflow.pyfunc
    from dermspark.bundle import load_bundle
    from dermspark.images import decode_image
    from dermspark.score.predict import predict_bytes

    location = _client(mlflow_server).get_model_version_download_uri("lesions", "1")
    model = mlflow.pyfunc.load_model(
        mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(tmp_path), tracking_uri=mlflow_server)
    )
    bundle = load_bundle(str(pipeline / "model" / "model"))
    assert bundle.temperature != pytest.approx(1.0, abs=1e-3)  # else calibration would go unseen
    contents = [path.read_bytes() for path in archive_jpegs]
    images = np.stack([decode_image(content, *bundle.input_size, bundle.decode_options) for content in contents])
    found = predict_bytes(bundle, contents, bundle.temperature)
    scored = np.stack([prediction.probabilities for prediction in found])
    columns = [f"prob_{name}" for name in bundle.classes]
    frame = model.predict(images)
    calibrated = frame[columns].to_numpy()
    assert calibrated.dtype == np.float32 and calibrated.shape == (len(contents), len(bundle.classes))
    np.testing.assert_allclose(calibrated, scored, atol=1e-6)
    # The review flag as scoring gives it, for the same files.
    np.testing.assert_allclose(frame["ood_score"].to_numpy(dtype=float), [p.ood_score for p in found], rtol=1e-5)
    assert frame["review"].tolist() == [p.review for p in found]
    assert frame["review_reason"].tolist() == [p.review_reason for p in found]
    np.testing.assert_allclose(
        model.predict(images, params={"calibration": "none"})[columns].to_numpy(), bundle.predict(images), atol=1e-6
    )
    with pytest.raises(Exception, match="calibration must be one of temperature, none"):
        model.predict(images, params={"calibration": "platt"})


def test_tensorboard_has_one_entry_per_epoch(pipeline):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for side, tag in (("train", "epoch_loss"), ("validation", "epoch_balanced_accuracy")):
        events = EventAccumulator(str(pipeline / "model" / "tensorboard" / side), size_guidance={"tensors": 0})
        events.Reload()
        steps = [event.step for event in events.Tensors(tag)]
        assert sorted(steps) == list(range(EPOCHS)), (side, steps)


def _scores(spark, folder) -> tuple[dict, set]:
    """Each path's probabilities, and the model versions the rows name."""
    rows = spark.read.parquet(str(folder / "predictions")).collect()
    return {row["path"]: [row[name] for name in row.asDict() if name.startswith("prob_")] for row in rows}, {
        row["model_version"] for row in rows
    }


def test_scoring_by_registry_uri_gives_the_bundles_probabilities(
    spark, pipeline, mlflow_server, champion, archive_jpegs, tmp_path
):
    from dermspark.score.job import run_score
    from dermspark.settings.score import ScoreSettings

    images = tmp_path / "images"
    images.mkdir()
    for path in archive_jpegs:
        (images / path.name).write_bytes(path.read_bytes())
    found = {}
    for name, model in (
        ("folder", str(pipeline / "model" / "model")),
        ("version", "models:/lesions/1"),
        ("alias", champion),
    ):
        result = run_score(
            spark, ScoreSettings(model=model, input=str(images), output=str(tmp_path / name), mlflow_uri=mlflow_server)
        )
        assert result.scored == len(archive_jpegs)
        found[name] = _scores(spark, tmp_path / name)
    assert found["version"][0] == found["alias"][0]
    for path, row in found["folder"][0].items():
        assert found["version"][0][path] == pytest.approx(row, abs=1e-6)
    assert found["version"][1] == found["alias"][1] == {"lesions/1"}
    summary = json.loads(next((tmp_path / "alias" / "runs").glob("*/summary.json")).read_text())
    assert summary["registered_model"] == {
        "name": "lesions",
        "version": "1",
        "alias": "champion",
        "uri": "models:/lesions/1",
    }


def test_serving_by_alias_names_the_registered_version(mlflow_server, champion, archive_jpegs, pipeline):
    from dermspark.serve.app import make_app
    from dermspark.settings.serve import ServeSettings
    from fastapi.testclient import TestClient

    with TestClient(make_app(ServeSettings(model=champion, mlflow_uri=mlflow_server))) as client:
        health = client.get("/health").json()
        assert health["version"] == "lesions/1"
        assert health["registered_model"] == {
            "name": "lesions",
            "version": "1",
            "alias": "champion",
            "uri": "models:/lesions/1",
        }
        answer = client.post("/predict", files={"file": ("a.jpg", archive_jpegs[0].read_bytes(), "image/jpeg")})
        assert answer.status_code == 200 and answer.json()["version"] == "lesions/1"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"mlflow_uri": "http://127.0.0.1:{port}"}, "does not answer"),
        ({"register": "lesions"}, "--register needs a model registry"),
        ({"register": "bad name", "mlflow_uri": "http://127.0.0.1:{port}"}, "may hold only letters"),
    ],
)
def test_tracking_mistakes_are_one_clear_error_before_training(
    spark, pipeline, tmp_path, monkeypatch, settings, message
):
    from dermspark import DermsparkError
    from dermspark.serve.load import free_port
    from dermspark.settings.train import TrainSettings
    from dermspark.train.job import run_train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    values = {key: value.format(port=free_port()) for key, value in settings.items()}
    with pytest.raises(DermsparkError, match=message):
        run_train(spark, TrainSettings(dataset=str(pipeline / "dataset"), output=str(tmp_path / "model"), **values))
    assert not (tmp_path / "model").exists()


def test_a_registry_uri_without_a_server_is_one_clear_error(tmp_path, monkeypatch):
    from dermspark import DermsparkError
    from dermspark.serve.app import make_app
    from dermspark.settings.serve import ServeSettings

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(DermsparkError, match="give the registry with --mlflow-uri"):
        make_app(ServeSettings(model="models:/lesions/1"))


def test_a_password_in_the_tracking_uri_is_never_shown():
    from dermspark.tracking.server import shown

    assert shown("https://ann:s3cret@mlflow.example:5000/base") == "https://mlflow.example:5000/base"
    assert shown("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
