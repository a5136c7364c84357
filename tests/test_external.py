"""Images from other sources: the labels_csv layout, the external figures (report.external),
scoring with labels reporting them, and colour constancy as a decode option that ingest, scoring
and serving apply alike."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dermspark.images import DecodeOptions, decode_image
from dermspark.ingest.pipeline import run_ingest
from dermspark.manifests import DatasetManifest
from dermspark.report.external import evaluate_heldout, own_groups
from dermspark.settings.ingest import IngestSettings
from dermspark.synthetic import make_synthetic_external
from PIL import Image
from sklearn.metrics import roc_auc_score

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def test_heldout_figures_average_the_classes_present_and_flag_at_the_given_threshold():
    rng = np.random.default_rng(0)
    labels = np.repeat([2, 4, 5], [30, 20, 50])  # bkl, mel, nv only, as ISIC 2017
    probabilities = rng.dirichlet(np.ones(7), labels.size)
    probabilities[np.arange(labels.size), labels] += 0.4 * rng.random(labels.size)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    groups = [None if index % 2 else f"lesion-{index // 4}" for index in range(labels.size)]
    found = evaluate_heldout(
        labels,
        probabilities,
        groups,
        CLASSES,
        5,
        melanoma=4,
        threshold=0.2,
        uncalibrated=probabilities**2 / (probabilities**2).sum(axis=1, keepdims=True),
    )
    predicted = probabilities.argmax(axis=1)
    recalls = [np.mean(predicted[labels == label] == label) for label in (2, 4, 5)]
    assert found["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    assert found["balanced_accuracy_over"] == ["bkl", "mel", "nv"]
    melanoma = found["melanoma"]
    assert melanoma["auc"] == pytest.approx(roc_auc_score(labels == 4, probabilities[:, 4]))
    assert melanoma["sensitivity"] == pytest.approx(np.mean(probabilities[labels == 4, 4] >= 0.2))
    assert melanoma["specificity"] == pytest.approx(np.mean(probabilities[labels != 4, 4] < 0.2))
    low, high = melanoma["auc_interval"]
    assert low < melanoma["auc"] < high
    assert melanoma["interval"]["sensitivity"][0] <= melanoma["sensitivity"] <= melanoma["interval"]["sensitivity"][1]
    assert found["ece_before"] != found["ece"]
    # Images without a lesion id are groups of their own; the others group by lesion.
    assert found["interval"]["groups"] == 50 + 25  # 50 alone; lesions 0 to 24, two images each
    assert len(set(own_groups([None, "", b"a", "a"]))) == 3


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """A synthetic other clinic, with one row whose diagnosis no space knows and one image no row names."""
    root = tmp_path_factory.mktemp("external")
    archive = make_synthetic_external(str(root / "archive"), images=24, seed=5, cast=(1.0, 0.8, 0.6))
    with open(root / "archive" / "labels.csv", "a") as handle:
        handle.write("EXT_9999999,EXT_9999999,unknown_diagnosis\n")
    for name in ("EXT_9999999", "stray"):
        shutil.copy(root / "archive" / "images" / "EXT_0000000.jpg", root / "archive" / "images" / f"{name}.jpg")
    return archive


def test_a_labels_csv_archive_is_ingested_with_every_input_accounted_for(spark, external, tmp_path):
    result = run_ingest(
        spark, IngestSettings(input=external.path, output=str(tmp_path / "ext"), source="labels_csv", num_files=2)
    )
    # 24 good rows, one row whose diagnosis is no class, one image without a row.
    assert (result.manifest.inputs, result.manifest.written, result.manifest.rejected) == (26, 24, 2)
    assert result.manifest.by_reason == {"unknown_label": 1, "no_metadata": 1}
    assert result.manifest.grouped_by == {"lesion": 0, "image": 24}
    assert DatasetManifest.from_json((tmp_path / "ext" / "manifest.json").read_text()) == result.manifest
    manifest = json.loads((tmp_path / "ext" / "manifest.json").read_text())
    # Upper-case diagnoses are read as their classes.
    assert sum(manifest["per_split"][split].get("mel", 0) for split in manifest["per_split"]) == 8
    assert manifest["decode"]["color_constancy"] == "none"


def test_shades_of_gray_removes_a_known_cast():
    rng = np.random.default_rng(1)
    neutral = np.clip(rng.normal(150, 40, (150, 200, 3)), 0, 255)
    neutral[..., :] = neutral.mean(axis=2, keepdims=True)  # grey: equal channels
    cast = np.clip(neutral * (1.0, 0.8, 0.6), 0, 255).astype(np.uint8)
    content = _png(cast)
    options = DecodeOptions(color_constancy="shades_of_gray")
    corrected = decode_image(content, 75, 100, options).astype(float)
    plain = decode_image(content, 75, 100).astype(float)
    means = corrected.reshape(-1, 3).mean(axis=0)
    assert np.ptp(plain.reshape(-1, 3).mean(axis=0)) > 30  # the cast is there
    assert np.ptp(means) < 0.03 * means.mean()  # and gone
    gray_world = decode_image(content, 75, 100, DecodeOptions(color_constancy="gray_world")).astype(float)
    assert np.ptp(gray_world.reshape(-1, 3).mean(axis=0)) < 2
    with pytest.raises(ValueError, match="colour constancy power"):
        DecodeOptions(color_constancy="shades_of_gray", color_constancy_power=0.5)


def _png(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_colour_constancy_gives_the_same_pixels_in_ingest_scoring_and_serving(spark, pipeline, external, tmp_path):
    """Ingest stores the corrected pixels; a bundle whose preprocessing names the same option
    scores (Spark) and serves them: each file's probabilities are Keras' on those pixels, and
    differ from those of the uncorrected pixels. The scoring run's labels add the external
    figures to its report."""
    from dermspark.bundle import load_bundle, save_bundle
    from dermspark.score.job import run_score
    from dermspark.serve.app import make_app
    from dermspark.settings.score import ScoreSettings
    from dermspark.settings.serve import ServeSettings
    from dermspark.train.inputs import Inputs
    from fastapi.testclient import TestClient

    run_ingest(
        spark,
        IngestSettings(
            input=external.path,
            output=str(tmp_path / "ext"),
            source="labels_csv",
            num_files=2,
            color_constancy="shades_of_gray",
        ),
    )
    manifest = json.loads((tmp_path / "ext" / "manifest.json").read_text())
    options = DecodeOptions.from_record(manifest["decode"])
    assert options == DecodeOptions(color_constancy="shades_of_gray", color_constancy_power=6.0)
    stored, *_ = Inputs((tmp_path / "ext" / "images_75x100").as_uri(), 0, 1, 0).load(None, 64)
    files = sorted(Path(external.path, "images").glob("EXT_0*.jpg"))  # the written ones
    decoded = np.stack([decode_image(path.read_bytes(), 75, 100, options) for path in files])
    assert sorted(map(bytes, stored)) == sorted(map(bytes, decoded))

    trained = load_bundle(str(pipeline / "model" / "model"))
    preprocessing = {**trained.manifest.preprocessing, **options.recorded()}
    corrected = tmp_path / "corrected"
    save_bundle(str(corrected), trained.model, dataclasses.replace(trained.manifest, preprocessing=preprocessing))
    summary = run_score(
        spark,
        ScoreSettings(
            model=str(corrected),
            input=str(Path(external.path, "images")),
            output=str(tmp_path / "out"),
            glob="EXT_*.jpg",
            labels=str(Path(external.path, "labels.csv")),
        ),
    )
    rows = {Path(row["path"]).name: row for row in spark.read.parquet(str(tmp_path / "out" / "predictions")).collect()}
    service = TestClient(make_app(ServeSettings(model=str(corrected))))
    classes, temperature = trained.classes, trained.temperature
    expected = trained.predict(decoded[:6], temperature)
    uncorrected = trained.predict(
        np.stack([decode_image(path.read_bytes(), 75, 100) for path in files[:6]]), temperature
    )
    assert np.abs(expected - uncorrected).max() > 1e-4
    for path, wanted in zip(files[:6], expected, strict=True):
        np.testing.assert_allclose([rows[path.name][f"prob_{name}"] for name in classes], wanted, atol=1e-5)
        answer = service.post("/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")}).json()
        np.testing.assert_allclose([answer["probabilities"][name] for name in classes], wanted, atol=1e-5)

    record = tmp_path / "out" / "runs" / summary.run_id
    labeled = json.loads((record / "metrics.json").read_text())["labeled"]
    assert labeled["count"] == 24 and labeled["balanced_accuracy_over"] == ["bkl", "mel", "nv"]
    melanoma = labeled["melanoma"]
    assert melanoma["threshold"] == summary.record["calibration"]["melanoma_threshold"]
    assert melanoma["positives"] == 8 and melanoma["auc_interval"] is not None
    assert "ece" in labeled and "ece_before" in labeled
    assert "mel AUC" in (record / "report.md").read_text()


def test_a_labels_csv_archive_without_its_labels_or_images_is_one_line(spark, tmp_path):
    from dermspark import DermsparkError

    (tmp_path / "archive" / "images").mkdir(parents=True)
    with pytest.raises(DermsparkError, match=r"is not a labels_csv archive: labels.csv is missing"):
        run_ingest(
            spark, IngestSettings(input=str(tmp_path / "archive"), output=str(tmp_path / "o"), source="labels_csv")
        )
    (tmp_path / "archive" / "images").rmdir()
    (tmp_path / "archive" / "labels.csv").write_text("image_id,dx\n")
    with pytest.raises(DermsparkError, match=r"its images/ folder is missing"):
        run_ingest(
            spark, IngestSettings(input=str(tmp_path / "archive"), output=str(tmp_path / "o"), source="labels_csv")
        )
