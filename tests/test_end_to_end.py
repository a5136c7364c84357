"""The three jobs through the real entry point, spark-submit.sh, on a tiny synthetic archive."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import s3_filesystem, submit


def test_ingest_counts_reconcile(pipeline):
    manifest = json.loads((pipeline / "dataset" / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["written"] + manifest["rejected"]
    assert manifest["by_reason"] == {"no_metadata": 1}


def test_each_stage_prints_its_start_and_its_end_with_counts(pipeline):
    import re

    ingest, score = (pipeline / "ingest.out").read_text(), (pipeline / "score.out").read_text()
    manifest = json.loads((pipeline / "dataset" / "manifest.json").read_text())
    for job, text, stage in (
        ("ingest", ingest, "decoding and writing images_75x100"),
        ("ingest", ingest, "splitting by lesion"),
        ("score", score, "predicting"),
    ):
        assert re.search(rf"\[dermspark\] {job}: {stage}.* \.\.\.\n", text), stage
        assert re.search(rf"\[dermspark\] {job}: {stage}.* done in [0-9.]+ s", text), stage
    assert f"written {manifest['written']:,}, rejected {manifest['rejected']:,}" in ingest
    summary = json.loads(next((pipeline / "scores" / "runs").glob("*/summary.json")).read_text())
    assert f"rows {summary['inputs']:,}, errors {summary['errors']:,}" in score


def test_model_beats_the_majority_baseline(pipeline):
    test = json.loads((pipeline / "model" / "metrics.json").read_text())["test"]
    assert test["accuracy"] > test["baseline_accuracy"]
    # Answering the majority class has a balanced accuracy of 1 / (classes in the split) and
    # an AUC of 0.5. The synthetic classes differ in colour and shape, so 10 epochs learn
    # them well beyond that (0.44 and 0.94 on a 25-image test split of 5 classes).
    present = sum(1 for row in test["per_class"].values() if row["support"])
    assert test["balanced_accuracy"] >= 1 / present + 0.15
    assert test["macro_auc"] >= 0.8
    assert sum(map(sum, test["confusion_matrix"])) == test["count"]


def test_bundle_says_what_scoring_needs(pipeline):
    manifest = json.loads((pipeline / "model" / "model" / "manifest.json").read_text())
    assert manifest["classes"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert manifest["input_size"] == [75, 100]
    assert (manifest["preprocessing"]["resample"], manifest["preprocessing"]["aspect"]) == ("lanczos", "stretch")
    assert manifest["training_settings"]["epochs"] == 10
    assert len(manifest["dataset"]["manifest_sha256"]) == 64
    assert {"horovod", "petastorm", "pyspark"} <= set(manifest["library_versions"])
    assert manifest["metrics"]["test"]["count"] > 0


def test_metrics_have_test_and_validation_sections(pipeline):
    metrics = json.loads((pipeline / "model" / "metrics.json").read_text())
    for section in ("test", "validation"):
        assert {
            "accuracy",
            "balanced_accuracy",
            "macro_auc",
            "per_class",
            "confusion_matrix",
            "baseline_accuracy",
        } <= set(metrics[section])
        assert set(metrics[section]["per_class"]["nv"]) >= {"precision", "recall", "f1", "specificity", "auc"}
    assert len(metrics["history"]["val_loss"]) == 10
    assert "| test |" in (pipeline / "model" / "report.md").read_text()


def test_the_bundle_carries_its_model_card_and_the_test_predictions_recompute_its_figures(pipeline):
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    metrics = json.loads((pipeline / "model" / "metrics.json").read_text())
    card = (pipeline / "model" / "model" / "MODEL_CARD.md").read_text()
    assert "# Model card: benbrahim_cnn" in card and "No external evaluation was run" in card
    assert f"| test | {metrics['test']['count']} |" in card and "Fitzpatrick" in card
    tested = pd.read_parquet(pipeline / "model" / "test_predictions.parquet")
    classes = json.loads((pipeline / "dataset" / "manifest.json").read_text())["classes"]
    assert len(tested) == metrics["test"]["count"] and tested["fold"].isna().all()
    assert (
        confusion_matrix(tested["true_label"], tested["predicted_label"], labels=classes).tolist()
        == metrics["test"]["confusion_matrix"]
    )
    assert set(metrics["subgroups"]["by"]) == {"localization", "sex", "age_band", "dx_type"}
    sizes = {value: entry["images"] for value, entry in metrics["subgroups"]["by"]["sex"].items()}
    assert sizes == tested["sex"].fillna("unknown").value_counts().to_dict()


def test_checkpoints_went_to_the_s3_store(pipeline, s3_store):
    fs = s3_filesystem(s3_store)
    with fs.open("dermspark/e2e/pipeline/state.json") as handle:
        state = json.load(handle)
    assert state["finished"] and state["epoch"] == 0 and len(state["history"]["loss"]) == 10
    # Only the final checkpoint stays, beside the live TensorBoard logs (put there from rank 0's
    # local folder every epoch); nothing of the store was written beside the output.
    assert sorted(path.rsplit("/", 1)[1] for path in fs.ls("dermspark/e2e/pipeline")) == sorted(
        [state["start_from"], "state.json", "tensorboard"]
    )
    assert fs.ls("dermspark/e2e/pipeline/tensorboard/train")
    assert fs.ls(f"dermspark/e2e/pipeline/{state['start_from']}")
    assert not (pipeline / "model.checkpoints").exists()
    settings = json.loads((pipeline / "model" / "settings.json").read_text())
    assert settings["store"] == "s3a://dermspark/e2e/pipeline"


def _only_run(scores: Path) -> dict:
    (run,) = (scores / "runs").iterdir()
    return json.loads((run / "summary.json").read_text())


def test_predictions_schema_and_summary(spark, pipeline):
    predictions = spark.read.parquet(str(pipeline / "scores" / "predictions"))
    classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    for column in [
        "path",
        "sha256",
        "predicted_label",
        "confidence",
        "top_labels",
        "top_probabilities",
        "melanoma_flag",
        "error",
        "model_name",
        "bundle_sha256",
        "scored_at",
        "model_version",
        "scoring_date",
        "run_id",
        *[f"prob_{c}" for c in classes],
    ]:
        assert column in predictions.columns
    summary = _only_run(pipeline / "scores")
    assert summary["inputs"] == summary["scored"] + summary["errors"] + summary["skipped"]
    assert summary["by_reason"] == {"truncated": 1}
    assert predictions.count() == summary["inputs"]
    row = predictions.filter("error is null").first()
    assert row["top_labels"][0] == row["predicted_label"]
    assert row["top_probabilities"][0] == pytest.approx(row["confidence"])
    # The flag at the bundle's operating point, chosen on validation for the calibrated scores.
    manifest = json.loads((pipeline / "model" / "model" / "manifest.json").read_text())
    threshold = manifest["operating_point"]["threshold"]["temperature"]
    assert summary["calibration"] == {
        "temperature": manifest["calibration"]["temperature"],
        "melanoma_threshold": threshold,
    }
    flags = predictions.filter("error is null").select("prob_mel", "melanoma_flag").collect()
    assert all(flag == (mel >= threshold) for mel, flag in flags)


def test_udf_equals_in_process_keras(spark, pipeline):
    from dermspark.bundle import load_bundle
    from dermspark.images import decode_image
    from dermspark.report.calibration import apply_temperature

    bundle = load_bundle(str(pipeline / "model" / "model"))
    rows = (
        spark.read.parquet(str(pipeline / "scores" / "predictions"))
        .filter("error is null")
        .orderBy("path")
        .limit(16)
        .collect()
    )
    images = np.stack(
        [decode_image(Path(row["path"][len("file://") :]).read_bytes(), 75, 100, bundle.decode_options) for row in rows]
    )
    raw = bundle.model.predict(images, verbose=0)
    # Scoring applies the bundle's temperature (fitted on validation): the classes stay, the
    # probabilities move.
    temperature = bundle.manifest.calibration["temperature"]
    assert temperature != pytest.approx(1.0, abs=1e-3)
    got = np.array([[row[f"prob_{name}"] for name in bundle.classes] for row in rows])
    np.testing.assert_allclose(got, apply_temperature(raw, temperature), atol=1e-5)
    assert (got.argmax(axis=1) == raw.argmax(axis=1)).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ingest", "--input", "/nonexistent/archive"), "does not exist"),
        (("score", "--model", "/nonexistent/model", "--input", "/tmp"), "not a model bundle"),
        (("train", "--dataset", "/nonexistent/ds"), "not an ingested dataset"),
    ],
)
def test_bad_input_is_one_clear_message(args, message, tmp_path):
    # An output of the test's own: a fixed /tmp path may exist, and the job would fail on that first.
    args = (*args, "--output", str(tmp_path / "out"))
    result = submit(*args, timeout=300)
    # spark-submit merges the Python driver's stderr into its stdout.
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "failed: " in output and message in output
    assert "Traceback" not in output
