"""Batch scoring: every file accounted for, incremental runs, every input format, labels."""

import csv
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from dermspark import DermsparkError
from dermspark.score.job import run_score
from dermspark.settings.score import ScoreSettings


@pytest.fixture(scope="module")
def bundle(pipeline) -> Path:
    return pipeline / "model" / "model"


@pytest.fixture
def lake(pipeline, tmp_path) -> Path:
    """A folder of 12 good JPEGs in two subfolders, plus three broken files."""
    good = sorted((pipeline / "archive" / "HAM10000_images_part_1").glob("*.jpg"))[:12]
    for index, path in enumerate(good):
        folder = tmp_path / "lake" / f"day{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
    broken = tmp_path / "lake" / "broken"
    broken.mkdir()
    (broken / "empty.jpg").write_bytes(b"")
    (broken / "notes.jpg").write_text("not an image")
    (broken / "cut.jpg").write_bytes(good[0].read_bytes()[:400])
    return tmp_path / "lake"


def score(spark, bundle, source, output, **settings) -> dict:
    return run_score(spark, ScoreSettings(model=str(bundle), input=str(source), output=str(output), **settings))


def table(spark, output: Path):
    return spark.read.parquet(str(output / "predictions"))


def test_broken_files_get_error_rows_and_the_job_succeeds(spark, bundle, lake, tmp_path):
    summary = score(spark, bundle, lake, tmp_path / "out")
    assert (summary.inputs, summary.scored, summary.errors, summary.skipped) == (15, 12, 3, 0)
    assert summary.by_reason == {"unreadable": 1, "not_an_image": 1, "truncated": 1}
    rows = {Path(row["path"]).name: row for row in table(spark, tmp_path / "out").collect()}
    assert {name: rows[name]["error"] for name in ("empty.jpg", "notes.jpg", "cut.jpg")} == {
        "empty.jpg": "unreadable",
        "notes.jpg": "not_an_image",
        "cut.jpg": "truncated",
    }
    assert rows["cut.jpg"]["predicted_label"] is None and rows["cut.jpg"]["prob_nv"] is None
    for name, row in rows.items():
        content = next(lake.rglob(name)).read_bytes()
        assert row["sha256"] == hashlib.sha256(content).hexdigest()
    recorded = json.loads((tmp_path / "out" / "runs" / summary.run_id / "summary.json").read_text())
    assert recorded["inputs"] == recorded["scored"] + recorded["errors"] + recorded["skipped"]


def test_incremental_run_scores_only_new_files(spark, bundle, lake, pipeline, tmp_path):
    output = tmp_path / "out"
    score(spark, bundle, lake, output)
    new = sorted((pipeline / "archive" / "HAM10000_images_part_2").glob("*.jpg"))[:3]
    for path in new:
        shutil.copy(path, lake / "day1" / path.name)
    summary = score(spark, bundle, lake, output, incremental=True)
    # The empty file had a row too (error rows count as scored): only the three new ones run.
    assert (summary.inputs, summary.scored, summary.errors, summary.skipped) == (18, 3, 0, 15)
    latest = table(spark, output).filter(f"run_id = '{summary.run_id}'").collect()
    assert sorted(Path(row["path"]).name for row in latest) == sorted(path.name for path in new)
    assert table(spark, output).count() == 18


def test_rerun_without_new_files_adds_no_rows(spark, bundle, lake, tmp_path):
    output = tmp_path / "out"
    first = score(spark, bundle, lake, output)
    again = score(spark, bundle, lake, output, incremental=True)
    assert (again.scored, again.errors, again.skipped, again.predictions) == (0, 0, 15, None)
    assert table(spark, output).count() == 15
    with pytest.raises(DermsparkError, match="already has predictions of model version"):
        score(spark, bundle, lake, output)
    replaced = score(spark, bundle, lake, output, mode="overwrite")
    runs = {row["run_id"] for row in table(spark, output).select("run_id").distinct().collect()}
    assert runs == {replaced.run_id} != {first.run_id}
    assert table(spark, output).count() == 15


def test_an_incremental_run_that_would_score_otherwise_is_refused(spark, bundle, lake, tmp_path):
    """Skipped files keep their earlier rows, so new rows of the version must be made alike."""
    output = tmp_path / "out"
    first = score(spark, bundle, lake, output)
    assert first.record["scored_with"]["temperature"] != 1.0
    for other, key in (
        ({"calibration": "none"}, "temperature"),
        ({"melanoma_threshold": 0.9}, "melanoma_threshold"),
        ({"top_k": 2}, "top_k"),
    ):
        with pytest.raises(DermsparkError, match=f"has rows scored with .*{key} .*--model-version"):
            score(spark, bundle, lake, output, incremental=True, **other)
    assert table(spark, output).count() == 15
    # Once overwritten, the version's rows are the new run's alone, and those set what is alike.
    score(spark, bundle, lake, output, mode="overwrite", calibration="none")
    again = score(spark, bundle, lake, output, incremental=True, calibration="none")
    assert (again.skipped, again.record["scored_with"]["temperature"]) == (15, 1.0)
    with pytest.raises(DermsparkError, match=r"scored with .*temperature 1\.0 \(now"):
        score(spark, bundle, lake, output, incremental=True)


def test_parquet_inputs_give_the_same_predictions_as_files(spark, bundle, lake, tmp_path):
    files = score(spark, bundle, lake, tmp_path / "files")
    paths = [(str(path), path.read_bytes()) for path in sorted(lake.rglob("*.jpg"))]
    spark.createDataFrame(paths, "path string, image binary").write.parquet(str(tmp_path / "table.parquet"))
    by_path = score(spark, bundle, tmp_path / "table.parquet", tmp_path / "by-path")
    by_bytes = score(spark, bundle, tmp_path / "table.parquet", tmp_path / "by-bytes", content_column="image")
    assert by_path.record["input_format"] == by_bytes.record["input_format"] == "parquet"

    def rows(output):
        return sorted(
            (row["sha256"], row["error"], row["prob_nv"]) for row in table(spark, tmp_path / output).collect()
        )

    expected = rows("files")
    for output in ("by-path", "by-bytes"):
        got = rows(output)
        assert [row[:2] for row in got] == [row[:2] for row in expected]
        # Batches are made up differently, and oneDNN's sums then differ in the last bits.
        assert [row[2] for row in got] == pytest.approx([row[2] for row in expected], abs=1e-5)
    assert files.inputs == by_path.inputs == by_bytes.inputs == 15


def test_ingested_test_split_matches_the_training_evaluation(spark, bundle, pipeline, tmp_path):
    """Scoring the dataset's test split reproduces the metrics training reported for it."""
    summary = score(spark, bundle, pipeline / "dataset", tmp_path / "out", split="test")
    assert summary.record["input_format"] == "petastorm"
    metrics = json.loads((tmp_path / "out" / "runs" / summary.run_id / "metrics.json").read_text())
    trained = json.loads((pipeline / "model" / "metrics.json").read_text())["test"]
    assert metrics["labeled"]["count"] == trained["count"] == summary.inputs
    assert metrics["labeled"]["confusion_matrix"] == trained["confusion_matrix"]
    assert metrics["labeled"]["accuracy"] == pytest.approx(trained["accuracy"])
    # Grouped by the same lesions, drawn the same way.
    assert metrics["labeled"]["interval"] == trained["interval"]


def test_real_images_with_labels_give_a_metrics_report(spark, bundle, real_data, tmp_path):
    archive = real_data / "ham10000-600x450"
    summary = score(
        spark, bundle, archive, tmp_path / "out", glob="*.jpg", labels=str(archive / "HAM10000_metadata.csv")
    )
    assert (summary.inputs, summary.scored, summary.record["evaluated"]) == (250, 250, 250)
    run = tmp_path / "out" / "runs" / summary.run_id
    metrics = json.loads((run / "metrics.json").read_text())
    assert sum(map(sum, metrics["labeled"]["confusion_matrix"])) == 250
    assert metrics["labeled"]["per_class"]["mel"]["support"] == 24
    # The metadata's lesions group the 250 images for the interval.
    with open(archive / "HAM10000_metadata.csv") as handle:
        lesion_of = {row["image_id"]: row["lesion_id"] for row in csv.DictReader(handle)}
    lesions = {lesion_of[path.stem] for path in archive.rglob("*.jpg")}
    assert metrics["labeled"]["interval"]["groups"] == len(lesions) < 250
    assert "| labeled | 250 |" in (run / "report.md").read_text()
    assert (run / "confusion_matrix_labeled.png").stat().st_size > 0
    # Subgroups by the metadata the labels carry: every labeled image in one group per attribute.
    with open(archive / "HAM10000_metadata.csv") as handle:
        sex_of = {row["image_id"]: row["sex"] for row in csv.DictReader(handle)}
    by_sex = {value: entry["images"] for value, entry in metrics["subgroups"]["by"]["sex"].items()}
    scored = [sex_of[path.stem] or "unknown" for path in archive.rglob("*.jpg")]
    assert by_sex == {value: scored.count(value) for value in set(scored)}
    assert "## Labeled images by subgroup" in (run / "report.md").read_text()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"incremental": True, "mode": "overwrite"}, "pick one"),
        ({"top_k": 0}, "at least 1"),
        ({"split": "test"}, "datasets made by ingest only"),
        ({"labels": "/nonexistent/labels.csv"}, "cannot read labels file"),
    ],
)
def test_bad_settings_are_one_clear_error(spark, bundle, lake, tmp_path, settings, message):
    with pytest.raises(DermsparkError, match=message):
        score(spark, bundle, lake, tmp_path / "out", **settings)
    assert not (tmp_path / "out" / "predictions").exists()


def test_killed_run_adds_nothing(spark, bundle, lake, real_data, tmp_path):
    """spark-submit killed while it writes its rows: the table keeps exactly the earlier run."""
    import subprocess

    from conftest import ROOT, kill_when

    output = tmp_path / "out"
    first = score(spark, bundle, lake, output)
    job = subprocess.Popen(
        [
            str(ROOT / "spark-submit.sh"),
            "score",
            "--model",
            str(bundle),
            "--output",
            str(output),
            "--input",
            str(real_data / "ham10000-200x150"),
            "--glob",
            "*.jpg",
            "--model-version",
            "another",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    kill_when(job, lambda: list(output.glob("_staging/*/rows")), "started writing")
    assert [run.name for run in (output / "runs").iterdir()] == [first.run_id]
    assert table(spark, output).count() == 15


def test_a_flips_bundle_scores_and_serves_the_mean_over_the_four_flips(spark, pipeline, archive_jpegs, tmp_path):
    """The pipeline's model in a bundle that says --tta flips and a temperature of 1.7: Spark
    scoring and the service both give, for each file, the mean of Keras' probabilities over the
    image's four flips, at that temperature, each flip predicted here on its own."""
    import numpy as np
    from dermspark.bundle import load_bundle, save_bundle
    from dermspark.images import decode_image
    from dermspark.report.calibration import apply_temperature
    from dermspark.serve.app import make_app
    from dermspark.settings.serve import ServeSettings
    from fastapi.testclient import TestClient

    trained = load_bundle(str(pipeline / "model" / "model"))
    manifest = dataclasses.replace(
        trained.manifest,
        test_time_augmentation="flips",
        calibration={**trained.manifest.calibration, "temperature": 1.7},
    )
    flips = tmp_path / "flips"
    save_bundle(str(flips), trained.model, manifest)
    files = tmp_path / "files"
    files.mkdir()
    for path in archive_jpegs:
        shutil.copy(path, files / path.name)
    summary = score(spark, flips, files, tmp_path / "out")
    assert summary.record["calibration"]["temperature"] == 1.7
    rows = {Path(row["path"]).name: row for row in table(spark, tmp_path / "out").collect()}
    service = TestClient(make_app(ServeSettings(model=str(flips))))
    classes = trained.classes
    for path in archive_jpegs:
        image = decode_image(path.read_bytes(), 75, 100, trained.decode_options)[None]
        views = [image, image[:, :, ::-1], image[:, ::-1], image[:, ::-1, ::-1]]
        passes = [trained.model.predict_on_batch(np.ascontiguousarray(view)) for view in views]
        expected = apply_temperature(np.mean(passes, axis=0), 1.7)[0]
        scored = np.array([rows[path.name][f"prob_{name}"] for name in classes])
        np.testing.assert_allclose(scored, expected, atol=1e-5)
        answer = service.post("/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")}).json()
        np.testing.assert_allclose([answer["probabilities"][name] for name in classes], expected, atol=1e-5)
        # Neither one pass nor the bundle's own temperature would give these.
        assert np.abs(scored - apply_temperature(passes[0], 1.7)[0]).max() > 1e-4
        assert np.abs(scored - trained.predict(image, trained.temperature)[0]).max() > 1e-4
