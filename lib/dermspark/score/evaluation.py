"""Metrics of a scoring run against known labels: the same numbers and report as training's."""

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dermspark.report.metrics import classification_metrics


def _majority(manifest: dict, classes: list[str], labels: np.ndarray) -> int:
    """The training split's most common class (the baseline the training report used); the
    labeled images' own when the bundle does not say."""
    train = manifest.get("dataset", {}).get("per_split", {}).get("train")
    if train:
        return classes.index(max(train, key=train.get))
    return int(np.bincount(labels, minlength=len(classes)).argmax())


def evaluate_scores(written: DataFrame, truth: DataFrame, classes: list[str], manifest: dict) -> dict:
    """written: the run's rows (image_id, error, prob_*); truth: image_id, true_label, lesion_id.
    The interval resamples lesions, or images where the labels name no lesion."""
    joined = written.join(truth.withColumn("_has_row", F.lit(True)), "image_id", "left")
    coverage = joined.agg(
        F.count("*").alias("rows"),
        F.sum(F.when(F.col("_has_row").isNull(), 1).otherwise(0)).alias("no_label_row"),
        F.sum(F.when(F.col("_has_row") & F.col("true_label").isNull(), 1).otherwise(0)).alias("label_outside_classes"),
        F.sum(F.when(F.col("true_label").isNotNull() & F.col("error").isNotNull(), 1).otherwise(0))
        .alias("labeled_with_error"),
    ).first().asDict()
    usable = joined.filter(F.col("true_label").isNotNull() & F.col("error").isNull())
    # Small: one label and one probability per class per labeled image, no pixels.
    rows = usable.select("true_label", F.coalesce("lesion_id", "image_id").alias("group"),
                         F.array(*[f"prob_{name}" for name in classes]).alias("p")).collect()
    coverage = {key: int(value or 0) for key, value in coverage.items()} | {"evaluated": len(rows)}
    if not rows:
        return {"coverage": coverage}
    labels = np.array([classes.index(row["true_label"]) for row in rows])
    probabilities = np.array([row["p"] for row in rows], dtype=np.float64)
    positive = manifest.get("positive_class")
    section = classification_metrics(labels, probabilities, classes, _majority(manifest, classes, labels),
                                     positive if positive in classes and len(classes) == 2 else None,
                                     groups=np.array([row["group"] for row in rows]))
    return {"labeled": section, "coverage": coverage}

