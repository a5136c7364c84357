"""train --cv: folds as splits, the summary's arithmetic, and a 3-fold run through the real job
(Horovod, Petastorm, Keras), one fold as its own application and the rest by a resume."""

import json

import numpy as np
import pytest
from dermspark import DermsparkError
from dermspark.bundle import load_bundle
from dermspark.ingest.pipeline import run_ingest
from dermspark.report.calibration import reliability
from dermspark.report.cross_validation import summarize
from dermspark.settings.ingest import IngestSettings
from dermspark.settings.train import TrainSettings
from dermspark.train.cv import fold_splits, per_split_of
from dermspark.train.inputs import Inputs
from dermspark.train.job import run_train
from sklearn.metrics import confusion_matrix


def test_each_fold_is_once_test_once_validation_and_otherwise_training():
    splits = [fold_splits(5, index) for index in range(5)]
    assert splits[4] == {"train": [1, 2, 3], "validation": [0], "test": [4]}
    for fold in range(5):
        assert sum(fold in split["test"] for split in splits) == 1
        assert sum(fold in split["validation"] for split in splits) == 1
        assert sum(fold in split["train"] for split in splits) == 3
    per_fold = {"0": {"mel": 2, "nv": 5}, "1": {"nv": 4}, "2": {"mel": 1, "nv": 3}}
    assert per_split_of(per_fold, fold_splits(3, 1)) == {
        "train": {"mel": 2, "nv": 5},
        "validation": {"mel": 1, "nv": 3},
        "test": {"nv": 4},
    }


def _fold(matrix, auc, ece_before, ece_after, rates=None):
    matrix = np.asarray(matrix)
    correct = np.trace(matrix) / matrix.sum()
    recall = [matrix[i, i] / row for i, row in enumerate(matrix.sum(axis=1)) if row]
    point = None
    if rates:
        point = {
            "class": "mel",
            "target_sensitivity": 0.95,
            "threshold": {"temperature": rates[0]},
            "test": {"sensitivity": rates[1], "specificity": rates[2], "positives": rates[3], "negatives": rates[4]},
        }
    return {
        "test": {
            "count": int(matrix.sum()),
            "accuracy": correct,
            "balanced_accuracy": float(np.mean(recall)),
            "macro_auc": auc,
            "confusion_matrix": matrix.tolist(),
        },
        "calibration": {
            "temperature": 1.5,
            "reliability": {"test": {"before": {"ece": ece_before}, "after": {"ece": ece_after}}},
        },
        "operating_point": point,
    }


def test_summary_spreads_fold_figures_and_pools_out_of_fold_counts():
    folds = [
        _fold([[3, 1], [0, 2]], 0.8, 0.2, 0.05, (0.3, 1.0, 0.5, 2, 4)),
        _fold([[4, 0], [1, 1]], None, 0.1, 0.03, (0.4, 0.5, 1.0, 2, 4)),
        _fold([[2, 2], [1, 3]], 0.6, 0.3, 0.04, (0.2, 0.75, 0.8, 4, 5)),
    ]
    summary = summarize(folds, ["mel", "nv"])
    accuracies = [fold["test"]["accuracy"] for fold in folds]
    assert summary["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["accuracy"]["sd"] == pytest.approx(np.std(accuracies, ddof=1))
    # A fold without an AUC is left out of its mean, and the count says so.
    assert summary["macro_auc"] == {
        "mean": pytest.approx(0.7),
        "sd": pytest.approx(np.std([0.8, 0.6], ddof=1)),
        "folds": 2,
    }
    assert summary["ece_test"]["after"]["mean"] == pytest.approx(0.04)
    pooled = summary["pooled"]
    assert pooled["confusion_matrix"] == [[9, 3], [2, 6]]
    assert pooled["recall"] == {"mel": pytest.approx(0.75), "nv": pytest.approx(0.75)}
    assert pooled["accuracy"] == pytest.approx(15 / 20) and pooled["count"] == 20
    # Pooled rates weigh each fold by its melanomas (sensitivity) and its others (specificity).
    point = summary["operating_point"]
    assert point["sensitivity"] == pytest.approx((2 * 1.0 + 2 * 0.5 + 4 * 0.75) / 8)
    assert point["specificity"] == pytest.approx((4 * 0.5 + 4 * 1.0 + 5 * 0.8) / 13)
    assert point["thresholds"] == [0.3, 0.4, 0.2]


@pytest.fixture(scope="module")
def folded(spark, synthetic_archive, tmp_path_factory):
    output = tmp_path_factory.mktemp("cv") / "dataset"
    run_ingest(spark, IngestSettings(input=str(synthetic_archive.path), output=str(output), folds=3, num_files=4))
    return output


@pytest.fixture(scope="module")
def other_clinic(spark, tmp_path_factory):
    """An external dataset: another clinic's images of three classes, with a colour cast."""
    from dermspark.synthetic import make_synthetic_external

    root = tmp_path_factory.mktemp("other-clinic")
    archive = make_synthetic_external(str(root / "archive"), images=18, seed=2, cast=(1.0, 0.9, 0.8))
    run_ingest(spark, IngestSettings(input=archive.path, output=str(root / "clinic"), source="labels_csv", num_files=2))
    return root / "clinic"


def test_an_external_dataset_must_share_classes_and_pixels(tmp_path):
    from dermspark.manifests import DatasetManifest
    from dermspark.train.dataset import external_datasets

    values = {
        "classes": ["a", "b"],
        "decode": {"resample": "lanczos", "aspect": "stretch"},
        "datasets": {"75x100": "images_75x100"},
        "written": 5,
    }
    training = DatasetManifest.from_dict(values)
    for name, changes in (
        ("same", {}),
        ("classes", {"classes": ["melanoma", "non_melanoma"]}),
        ("pixels", {"decode": {"aspect": "crop"}}),
        ("size", {"datasets": {"90x120": "x"}}),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({**values, **changes}))
    [same] = external_datasets(str(tmp_path / "same"), training, (75, 100), "m")
    assert same["name"] == "same" and same["url"].endswith("same/images_75x100")
    with pytest.raises(DermsparkError, match="has classes .* ingest it with the same --label-space"):
        external_datasets(str(tmp_path / "classes"), training, (75, 100), "m")
    with pytest.raises(DermsparkError, match="'aspect': 'crop'.* ingest it with the same settings"):
        external_datasets(f"{tmp_path / 'same'},{tmp_path / 'pixels'}", training, (75, 100), "m")
    with pytest.raises(DermsparkError, match="model m needs 75x100 images"):
        external_datasets(str(tmp_path / "size"), training, (75, 100), "m")


def test_a_claim_from_before_a_setting_existed_holds_its_default(tmp_path):
    """cv.json written by a version without --tta: continuing at tta's default is the same run;
    with flips it is another."""
    from dermspark.train.cv import CLAIM, _claim

    url = (tmp_path / "cv").as_uri()
    settings = TrainSettings(dataset="unused", output=url, cv=3, run_id="older")
    _claim(url, settings)
    claim = json.loads((tmp_path / "cv" / CLAIM).read_text())
    del claim["settings"]["tta"]
    (tmp_path / "cv" / CLAIM).write_text(json.dumps(claim))
    assert _claim(url, settings)["run_id"] == "older"
    with pytest.raises(DermsparkError, match=r"with other settings \(tta\)"):
        _claim(url, TrainSettings(dataset="unused", output=url, cv=3, run_id="older", tta="flips"))


def test_cv_needs_a_dataset_with_as_many_folds(spark, synthetic_archive, folded, tmp_path):
    with pytest.raises(DermsparkError, match=r"--cv 4 needs a dataset ingested with --folds 4; .* has 3 folds"):
        run_train(spark, TrainSettings(dataset=str(folded), output=str(tmp_path / "m"), cv=4))
    with pytest.raises(DermsparkError, match="--fold needs --cv K"):
        run_train(spark, TrainSettings(dataset=str(folded), output=str(tmp_path / "m"), fold=1))
    with pytest.raises(DermsparkError, match="--fold must be within 0 to 2, got 3"):
        run_train(spark, TrainSettings(dataset=str(folded), output=str(tmp_path / "m"), cv=3, fold=3))
    assert not (tmp_path / "m").exists()


def test_three_folds_one_alone_then_the_rest_by_resume(spark, folded, other_clinic, mlflow_server, tmp_path):
    output = tmp_path / "cv"
    settings = {
        "dataset": str(folded),
        "output": str(output),
        "cv": 3,
        "epochs": 1,
        "batch_size": 8,
        "num_proc": 2,
        "run_id": "cv-test",
        "mlflow_uri": mlflow_server,
        "experiment": "cv-test",
        "tta": "flips",
        "external": str(other_clinic),
    }
    alone = run_train(spark, TrainSettings(**settings, fold=1))
    assert alone.trained == [1] and alone.waiting_for == [0, 2]
    assert not (output / "cv_metrics.json").exists()
    # The output is this run's: another run id, or other settings under this one, is refused.
    with pytest.raises(DermsparkError, match="holds cross-validation run cv-test: pass --run-id cv-test"):
        run_train(spark, TrainSettings(**{**settings, "run_id": None}))
    with pytest.raises(DermsparkError, match=r"with other settings \(epochs\)"):
        run_train(spark, TrainSettings(**{**settings, "epochs": 2}))
    first = json.loads((output / "fold-1" / "metrics.json").read_text())

    rest = run_train(spark, TrainSettings(**settings))
    assert rest.trained == [0, 2]
    # Fold 1 was kept as it was, not trained again.
    assert json.loads((output / "fold-1" / "metrics.json").read_text()) == first
    manifest = json.loads((folded / "manifest.json").read_text())
    folds = [json.loads((output / f"fold-{index}" / "metrics.json").read_text()) for index in range(3)]
    for index, metrics in enumerate(folds):
        # Each model is tested on its own fold and validated on the next.
        assert metrics["test"]["count"] == sum(manifest["per_fold"][str(index)].values())
        assert metrics["validation"]["count"] == sum(manifest["per_fold"][str((index + 1) % 3)].values())
        assert (output / f"fold-{index}" / "model" / "manifest.json").exists()
        # Which fold it is, saved with its settings: the cross-validation's run, nested in MLflow.
        recorded = json.loads((output / f"fold-{index}" / "settings.json").read_text())["fold"]
        assert recorded == {
            "index": index,
            "of": 3,
            "splits": {"train": [(index + 2) % 3], "validation": [(index + 1) % 3], "test": [index]},
            "run_id": rest.run_id,
            "mlflow_parent": recorded["mlflow_parent"],
        }
        assert recorded["mlflow_parent"]
    # The bundles predict with test-time flips, and a fold's test figures are those predictions:
    # fold 0's test images, read back and predicted by its bundle, give its confusion matrix.
    bundle = load_bundle(str(output / "fold-0" / "model"))
    assert bundle.manifest.test_time_augmentation == "flips"
    images, labels, *_ = Inputs((folded / "images_75x100").as_uri(), 0, 1, 0, fold_splits(3, 0)).load("test", 64)
    probabilities = bundle.predict(images)
    assert (
        confusion_matrix(labels, probabilities.argmax(axis=1), labels=range(7)).tolist()
        == folds[0]["test"]["confusion_matrix"]
    )
    # The probabilities themselves, not only their classes: the calibration error before the
    # temperature is of exactly these (a one-pass evaluation differs in it).
    assert reliability(probabilities, labels)["ece"] == pytest.approx(
        folds[0]["calibration"]["reliability"]["test"]["before"]["ece"], abs=1e-6
    )
    assert "test-time flips" in (output / "fold-0" / "report.md").read_text()
    # The external dataset, every image of it, predicted by the same bundle (flips, temperature)
    # and flagged at its own threshold.
    images, labels, *_ = Inputs((other_clinic / "images_75x100").as_uri(), 0, 1, 0).load(None, 64)
    external = folds[0]["external"]["clinic"]
    calibrated = bundle.predict(images, bundle.temperature)
    assert external["count"] == 18 and external["balanced_accuracy_over"] == ["bkl", "mel", "nv"]
    assert confusion_matrix(labels, calibrated.argmax(axis=1), labels=range(7)).tolist() == external["confusion_matrix"]
    threshold = bundle.manifest.threshold("temperature")
    assert external["melanoma"]["threshold"] == threshold
    assert external["melanoma"]["sensitivity"] == pytest.approx(np.mean(calibrated[labels == 4, 4] >= threshold))
    assert reliability(calibrated, labels)["ece"] == pytest.approx(external["ece"], abs=1e-6)
    assert "## External datasets" in (output / "fold-0" / "report.md").read_text()
    summary = json.loads((output / "cv_metrics.json").read_text())
    assert summary == rest.summary_figures and summary["folds"] == 3
    for key in ("accuracy", "balanced_accuracy"):
        assert summary[key]["mean"] == pytest.approx(np.mean([metrics["test"][key] for metrics in folds]))
    # Every image is tested once: the pooled matrix holds the whole dataset.
    assert summary["pooled"]["count"] == manifest["written"]
    # The out-of-fold table: every image once, by the model that never trained on it, with its
    # lesion, fold and metadata; each fold's figures recompute from it.
    import pandas as pd

    oof = pd.read_parquet(output / "oof_predictions.parquet")
    assert rest.oof_predictions.endswith("oof_predictions.parquet")
    assert len(oof) == manifest["written"] and oof["image_id"].is_unique
    stored = pd.read_parquet(folded / "images_75x100", columns=["image_id", "lesion_id", "fold", "sex", "localization"])
    joined = oof.merge(stored, on="image_id", suffixes=("", "_stored"))
    assert len(joined) == len(oof)
    for column in ("lesion_id", "fold", "sex", "localization"):
        assert joined[column].astype(str).tolist() == joined[f"{column}_stored"].astype(str).tolist(), column
    classes = manifest["classes"]
    for index, metrics in enumerate(folds):
        rows = oof[oof["fold"] == index]
        assert (
            confusion_matrix(rows["true_label"], rows["predicted_label"], labels=classes).tolist()
            == metrics["test"]["confusion_matrix"]
        )
        threshold = json.loads((output / f"fold-{index}" / "model" / "manifest.json").read_text())["operating_point"][
            "threshold"
        ]["temperature"]
        assert (rows["melanoma_flag"] == (rows["prob_mel"].astype(float) >= threshold)).all()
        assert np.allclose(rows[[f"prob_{name}" for name in classes]].sum(axis=1), 1, atol=1e-5)
    # Each fold's model card, rewritten with every fold's summary once they were all done.
    card = (output / "fold-0" / "model" / "MODEL_CARD.md").read_text()
    assert "**Not a diagnosis.**" in card and "Cross-validation over 3 folds" in card
    assert f"balanced accuracy {summary['balanced_accuracy']['mean']:.3f}" in card
    assert "`clinic`: 18 images" in card and "## Test split by subgroup" in card
    assert oof["review"].notna().all() and set(oof["review_reason"].dropna()) <= {
        "not_dermoscopy",
        "out_of_distribution",
        "poor_quality",
        "uncertain",
    }
    assert "| mean ± sd |" in (output / "cv_report.md").read_text()
    clinic = summary["external"]["clinic"]
    assert [row["balanced_accuracy"] for row in clinic["per_fold"]] == [
        metrics["external"]["clinic"]["balanced_accuracy"] for metrics in folds
    ]
    assert clinic["balanced_accuracy"]["mean"] == pytest.approx(
        np.mean([row["balanced_accuracy"] for row in clinic["per_fold"]])
    )
    assert "## External dataset clinic" in (output / "cv_report.md").read_text()

    # In MLflow: one parent run holding the summary, each fold nested under it.
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("cv-test").experiment_id
    [parent] = client.search_runs([experiment], "tags.`dermspark.run_id` = 'cv-test'")
    assert parent.info.status == "FINISHED" and rest.mlflow_run_id == parent.info.run_id
    assert parent.data.metrics["cv_balanced_accuracy_mean"] == pytest.approx(summary["balanced_accuracy"]["mean"])
    assert parent.data.metrics["cv_pooled_accuracy"] == pytest.approx(summary["pooled"]["accuracy"])
    assert parent.data.metrics["cv_external_clinic_balanced_accuracy_mean"] == pytest.approx(
        clinic["balanced_accuracy"]["mean"]
    )
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(run.data.metrics["external_clinic_balanced_accuracy"] for run in children) == pytest.approx(
        sorted(metrics["external"]["clinic"]["balanced_accuracy"] for metrics in folds)
    )
    assert sorted(run.data.tags["dermspark.fold"] for run in children) == ["0", "1", "2"]
    assert {run.info.status for run in children} == {"FINISHED"}
    assert {item.path for item in client.list_artifacts(parent.info.run_id, "report")} >= {
        "report/cv_report.md",
        "report/cv_metrics.json",
    }
    # Each fold's bundle fits its own review flag; the summary gives each fold's shares and their mean.
    review = summary["review"]
    assert [row["test_flagged"] for row in review["per_fold"]] == [
        metrics["review"]["splits"]["test"]["share"] for metrics in folds
    ]
    assert review["test_flagged"]["mean"] == pytest.approx(np.mean([row["test_flagged"] for row in review["per_fold"]]))
    assert "## Review flag" in (output / "cv_report.md").read_text()


def test_subgroup_figures_recompute_from_a_predictions_table():
    """report.subgroups on a table made for it: a group under the floor is not judged, and a
    judged group's figures are what its rows give, computed another way (scikit-learn)."""
    import pandas as pd
    from dermspark.report.subgroups import MIN_LESIONS, age_band, subgroups
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(4)
    rows = 400
    classes = ["bkl", "mel", "nv"]
    truth = rng.choice(3, rows, p=[0.2, 0.2, 0.6])
    probabilities = rng.dirichlet([1, 1, 1], rows) * 0.5
    probabilities[np.arange(rows), truth] += 0.5 * (rng.random(rows) < 0.7)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "true_label": np.asarray(classes)[truth],
            "lesion_id": [f"L{i // 2}" for i in range(rows)],
            **{f"prob_{name}": probabilities[:, i] for i, name in enumerate(classes)},
            "melanoma_flag": probabilities[:, 1] >= 0.3,
            "sex": np.where(np.arange(rows) < 40, "female", "male"),
            "age": np.where(np.arange(rows) % 2, 35.0, np.nan),
            "localization": "back",
            "dx_type": "histo",
        }
    )
    found = subgroups(frame, classes, 1, draws=50)
    female, male = found["by"]["sex"]["female"], found["by"]["sex"]["male"]
    assert female["lesions"] == 20 < MIN_LESIONS and not female["judged"] and "balanced_accuracy" not in female
    men = frame[frame["sex"] == "male"]
    assert male["judged"] and male["images"] == len(men) and male["lesions"] == men["lesion_id"].nunique()
    predicted = men[[f"prob_{name}" for name in classes]].to_numpy().argmax(axis=1)
    assert male["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(men["true_label"].map(classes.index), predicted)
    )
    melanomas = men[men["true_label"] == "mel"]
    assert male["melanoma_sensitivity"] == pytest.approx(melanomas["melanoma_flag"].mean())
    assert male["melanoma_sensitivity_per_lesion"] == pytest.approx(
        melanomas.groupby("lesion_id")["melanoma_flag"].any().mean()
    )
    assert male["melanoma_specificity"] == pytest.approx(1 - men[men["true_label"] != "mel"]["melanoma_flag"].mean())
    low, high = male["intervals"]["balanced_accuracy"]
    assert low <= male["balanced_accuracy"] <= high
    assert set(found["by"]["age_band"]) == {"20-39", "unknown"} and age_band(85) == "80+" and age_band(19.9) == "0-19"
    assert male["melanoma_lesions"] == melanomas["lesion_id"].nunique() >= 10
    few = frame[~((frame["true_label"] == "mel") & (frame.index >= 60))]  # 20 melanoma images are left: < 10 lesions
    assert subgroups(few, classes, 1, draws=5)["by"]["sex"]["male"]["melanoma_sensitivity"] is None
