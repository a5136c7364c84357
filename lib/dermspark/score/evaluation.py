"""Metrics of a scoring run against known labels: the same numbers and report as training's."""

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dermspark.labels import melanoma_index
from dermspark.manifests import BundleManifest
from dermspark.report.calibration import apply_temperature
from dermspark.report.external import evaluate_heldout
from dermspark.score.ground_truth import METADATA


def _majority(manifest: BundleManifest, classes: list[str], labels: np.ndarray) -> int:
    """The training split's most common class (the baseline the training report used); the
    labeled images' own when the bundle does not say."""
    train = manifest.dataset.get("per_split", {}).get("train")
    if train:
        return classes.index(max(train, key=train.get))
    return int(np.bincount(labels, minlength=len(classes)).argmax())


def evaluate_scores(
    written: DataFrame,
    truth: DataFrame,
    classes: list[str],
    manifest: BundleManifest,
    temperature: float = 1.0,
    threshold: float | None = None,
) -> dict:
    """written: the run's rows (image_id, error, prob_*); truth: image_id, true_label, lesion_id.
    The intervals resample lesions, or images where the labels name no lesion. The figures are
    an external evaluation's (report.external): the melanoma flag at the run's threshold, and
    the ECE of the scored probabilities and of the same before the run's temperature."""
    joined = written.join(truth.withColumn("_has_row", F.lit(True)), "image_id", "left")
    coverage = (
        joined.agg(
            F.count("*").alias("rows"),
            F.sum(F.when(F.col("_has_row").isNull(), 1).otherwise(0)).alias("no_label_row"),
            F.sum(F.when(F.col("_has_row") & F.col("true_label").isNull(), 1).otherwise(0)).alias(
                "label_outside_classes"
            ),
            F.sum(F.when(F.col("true_label").isNotNull() & F.col("error").isNotNull(), 1).otherwise(0)).alias(
                "labeled_with_error"
            ),
        )
        .collect()[0]  # one row: an aggregate over the whole table
        .asDict()
    )
    usable = joined.filter(F.col("true_label").isNotNull() & F.col("error").isNull())
    # Small: one label and one probability per class per labeled image, no pixels.
    rows = usable.select(
        "true_label",
        F.coalesce("lesion_id", "image_id").alias("group"),
        F.array(*[f"prob_{name}" for name in classes]).alias("p"),
        "melanoma_flag",
        *METADATA,
    ).collect()
    coverage = {key: int(value or 0) for key, value in coverage.items()} | {"evaluated": len(rows)}
    if not rows:
        return {"coverage": coverage}
    labels = np.array([classes.index(row["true_label"]) for row in rows])
    probabilities = np.array([row["p"] for row in rows], dtype=np.float64)
    positive = manifest.positive_class
    section = evaluate_heldout(
        labels,
        probabilities,
        [row["group"] for row in rows],
        classes,
        _majority(manifest, classes, labels),
        positive if positive in classes and len(classes) == 2 else None,
        melanoma_index(classes),
        threshold,
        uncalibrated=apply_temperature(probabilities, 1 / temperature) if temperature != 1.0 else None,
    )
    return {"labeled": section, "coverage": coverage, "subgroups": _subgroups(rows, probabilities, classes)}


def _subgroups(rows, probabilities: np.ndarray, classes: list[str]) -> dict:
    import pandas as pd

    from dermspark.report.subgroups import subgroups

    frame = pd.DataFrame(
        {
            "true_label": [row["true_label"] for row in rows],
            "lesion_id": [row["group"] for row in rows],
            "melanoma_flag": [row["melanoma_flag"] for row in rows],
            **{f"prob_{name}": probabilities[:, index] for index, name in enumerate(classes)},
            **{name: [row[name] for row in rows] for name in METADATA},
        }
    )
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
    return subgroups(frame, classes, melanoma_index(classes))
