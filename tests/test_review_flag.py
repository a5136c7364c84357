"""The review flag and explanations through the real jobs, with the pipeline's bundle (trained on
the synthetic archive by spark-submit.sh): fitted by training, the same in scoring, serving and
the MLflow model, images of another kind flagged, and bundles from before it still scoring."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dermspark.bundle import load_bundle, save_bundle
from dermspark.ood_set import make_ood_set
from dermspark.score.job import run_score
from dermspark.serve.app import make_app
from dermspark.settings.score import ScoreSettings
from dermspark.settings.serve import ServeSettings
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def ood(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ood")
    make_ood_set(str(folder), per_kind=6, seed=4)
    return folder


def _score(spark, bundle, source, output, **settings) -> dict:
    return run_score(spark, ScoreSettings(model=str(bundle), input=str(source), output=str(output), **settings))


def _rows(spark, output: Path) -> dict:
    return {Path(row["path"]).name: row for row in spark.read.parquet(str(output / "predictions")).collect()}


def test_training_fits_the_flag_and_its_share_on_held_out_images_is_near_the_rate(pipeline):
    from scipy.stats import binom

    manifest = json.loads((pipeline / "model" / "model" / "manifest.json").read_text())
    review = manifest["review"]
    assert review["method"] == "mahalanobis" and review["review_rate"] == 0.05
    assert (pipeline / "model" / "model" / review["file"]).is_file()
    metrics = json.loads((pipeline / "model" / "metrics.json").read_text())["review"]
    validation, test = metrics["splits"]["validation"], metrics["splits"]["test"]
    # The detector's own share on validation, where its threshold was set: the rate, rounded up.
    assert validation["by_reason"]["out_of_distribution"] <= int(0.05 * (validation["images"] - 1)) + 1
    # Test took no part: its share of flags (five checks at 0.5% each, and the detector's 5%) lies
    # within the binomial's 99.9% bound for 7.5% of its images.
    assert test["flagged"] <= binom.ppf(0.999, test["images"], 0.075)
    assert "## Review flag" in (pipeline / "model" / "report.md").read_text()


def test_other_kinds_of_images_are_flagged_and_every_path_gives_the_same_flag(spark, pipeline, ood, tmp_path):
    bundle_path = pipeline / "model" / "model"
    summary = _score(spark, bundle_path, ood, tmp_path / "out")
    rows = _rows(spark, tmp_path / "out")
    flagged = [row["review"] for row in rows.values()]
    assert len(flagged) == 36 and np.mean(flagged) >= 0.9
    assert summary.record["reviews"]["flagged"] == sum(flagged)
    assert sum(summary.record["reviews"]["by_reason"].values()) == sum(flagged)
    assert all(row["review_reason"] is not None for row in rows.values() if row["review"])
    # The service and the MLflow model's code path give the same score and flag for the same file.
    bundle = load_bundle(str(bundle_path))
    service = TestClient(make_app(ServeSettings(model="(loaded)"), bundle=bundle))
    for path in sorted(ood.rglob("*.*"))[::5]:
        answer = service.post("/predict", files={"file": (path.name, path.read_bytes(), "image/png")}).json()
        row = rows[path.name]
        assert answer["ood_score"] == pytest.approx(row["ood_score"], rel=1e-5)
        assert (answer["review"], answer["review_reason"]) == (row["review"], row["review_reason"])


def test_lesions_of_the_archive_are_mostly_not_flagged(spark, pipeline, archive_jpegs, tmp_path):
    _score(spark, pipeline / "model" / "model", archive_jpegs[0].parent, tmp_path / "out")
    rows = _rows(spark, tmp_path / "out")
    assert np.mean([row["review"] for row in rows.values()]) <= 0.25


def test_a_bundle_from_before_the_flag_still_scores_and_serves(spark, pipeline, archive_jpegs, tmp_path):
    trained = load_bundle(str(pipeline / "model" / "model"))
    old = tmp_path / "old"
    save_bundle(str(old), trained.model, trained.manifest)  # no reviewer: as bundles made before it
    assert "review" not in json.loads((old / "manifest.json").read_text())
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(archive_jpegs[0], files / archive_jpegs[0].name)
    summary = _score(spark, old, files, tmp_path / "out")
    assert summary.scored == 1 and summary.record["reviews"]["flagged"] is None
    assert "no review flag" in summary.record["reviews"]["note"]
    [row] = _rows(spark, tmp_path / "out").values()
    assert (row["ood_score"], row["review"], row["review_reason"]) == (None, None, None)
    answer = (
        TestClient(make_app(ServeSettings(model=str(old))))
        .post("/predict", files={"file": ("a.jpg", archive_jpegs[0].read_bytes(), "image/jpeg")})
        .json()
    )
    assert answer["predicted_class"] == row["predicted_label"] and answer["review"] is None


def test_explanations_are_written_by_content_hash_and_served(spark, pipeline, archive_jpegs, tmp_path):
    import base64

    import cv2

    files = tmp_path / "files"
    files.mkdir()
    for path in archive_jpegs[:3]:
        shutil.copy(path, files / path.name)
    (files / "notes.jpg").write_text("not an image")
    summary = _score(spark, pipeline / "model" / "model", files, tmp_path / "out", explain=True)
    rows = _rows(spark, tmp_path / "out")
    assert rows["notes.jpg"]["explanation"] is None
    for path in archive_jpegs[:3]:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        written = Path(rows[path.name]["explanation"].removeprefix("file://"))
        assert written == tmp_path / "out" / "runs" / summary.run_id / "explanations" / f"{digest}.png"
        assert cv2.imread(str(written)).shape == (75, 100, 3)
    service = TestClient(
        make_app(ServeSettings(model="(loaded)"), bundle=load_bundle(str(pipeline / "model" / "model")))
    )
    answer = service.post(
        "/predict", params={"explain": "true"}, files={"file": ("a.jpg", archive_jpegs[0].read_bytes(), "image/jpeg")}
    ).json()
    layer = cv2.imdecode(np.frombuffer(base64.b64decode(answer["heatmap_png"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert layer.shape == (75, 100, 4)
    assert (
        service.post("/predict", files={"file": ("a.jpg", archive_jpegs[0].read_bytes(), "image/jpeg")}).json()[
            "heatmap_png"
        ]
        is None
    )


def test_a_bundle_from_before_the_flag_can_be_given_one(pipeline, ood, tmp_path):
    """scripts/fit_review.py: the flag fitted onto an old bundle from its own dataset, the same
    weights, the figures printed."""
    import subprocess
    import sys

    trained = load_bundle(str(pipeline / "model" / "model"))
    old = tmp_path / "old"
    save_bundle(str(old), trained.model, trained.manifest)
    done = subprocess.run(
        [
            sys.executable,
            "scripts/fit_review.py",
            "--bundle",
            str(old),
            "--dataset",
            str(pipeline / "dataset"),
            "--ood-check",
            str(ood),
            "--output",
            str(tmp_path / "new"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=600,
        check=True,
    )
    figures = json.loads(done.stdout)
    assert set(figures["splits"]) == {"validation", "test"} and figures["ood"]["images"] == 36
    assert set(figures["auroc"]) == {"mahalanobis", "energy", "max_softmax"}
    new = load_bundle(str(tmp_path / "new"))
    assert new.reviewer is not None and new.manifest.review["method"] == "mahalanobis"
    assert all(np.array_equal(a, b) for a, b in zip(new.model.get_weights(), trained.model.get_weights(), strict=True))
