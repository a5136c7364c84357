"""Lesion-grouped, class-stratified, seeded train/validation/test split.

HAM10000 holds 10,015 images of 7,470 lesions; a split by image puts the same lesion on both sides
and inflates test accuracy. Here a whole lesion goes to one split, and each class is split in the
requested ratios on its own, so rare classes reach every split.
"""

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

SPLITS = ("train", "validation", "test")
PRESETS = {"80/10/10": (0.8, 0.1, 0.1), "80/20": (0.8, 0.0, 0.2), "70/10/20": (0.7, 0.1, 0.2)}


def recipe_ratios(text: str) -> str:
    """`recipe:NAME` is that model recipe's paper split (huber_cnn: 70/10/20); anything else is
    ratios already."""
    if not text.startswith("recipe:"):
        return text
    from dermspark.models import get_recipe

    return get_recipe(text.split(":", 1)[1]).split  # ValueError names the known models


def parse_ratios(text: str) -> tuple[float, float, float]:
    """'80/10/10' -> (0.8, 0.1, 0.1); two parts mean no validation split."""
    if text in PRESETS:
        return PRESETS[text]
    try:
        parts = [float(part) for part in text.split("/")]
    except ValueError:
        raise ValueError(f"split {text!r} is not like 80/10/10") from None
    if len(parts) == 2:
        parts = [parts[0], 0.0, parts[1]]
    if len(parts) != 3 or any(part < 0 for part in parts) or sum(parts) <= 0:
        raise ValueError(f"split {text!r} needs three non-negative parts, e.g. 80/10/10")
    total = sum(parts)
    return tuple(part / total for part in parts)


def assign_splits(frame: DataFrame, ratios: tuple[float, float, float], seed: int) -> DataFrame:
    """Adds `split` to rows with `image_id`, `lesion_id` (may be empty) and `class_name`."""
    group = F.coalesce(F.nullif(F.trim("lesion_id"), F.lit("")), F.col("image_id"))
    frame = frame.withColumn("_group", group)
    # A lesion's class is its first by name: HAM10000 gives each lesion one diagnosis.
    lesions = frame.groupBy("_group").agg(F.min("class_name").alias("_group_dx"))
    # Seeded hash, not rand(): the same input gives the same split on every rerun and cluster.
    order = Window.partitionBy("_group_dx").orderBy(F.xxhash64(F.lit(seed), "_group"), "_group")
    per_class = Window.partitionBy("_group_dx")
    position = (F.row_number().over(order) - 0.5) / F.count("*").over(per_class)
    train, validation, _ = ratios
    lesions = lesions.withColumn(
        "split",
        F.when(position < train, "train")
        .when(position < train + validation, "validation")
        .otherwise("test"),
    )
    return frame.join(lesions.select("_group", "split"), "_group").drop("_group")


def assign_folds(frame: DataFrame, folds: int, seed: int) -> DataFrame:
    """Adds `fold` (0 to folds-1) to rows with `image_id`, `lesion_id` and `class_name`: every
    lesion whole in one fold, and each class's images shared out evenly. Within a class, lesions
    go largest first (ties in a seeded order) to the fold holding the fewest of its images so
    far, one class per task (a class's lesions are a small table)."""
    import pandas as pd

    if folds < 2:
        raise ValueError(f"--folds needs at least 2 folds, got {folds}")
    group = F.coalesce(F.nullif(F.trim("lesion_id"), F.lit("")), F.col("image_id"))
    frame = frame.withColumn("_group", group)
    lesions = frame.groupBy("_group").agg(F.min("class_name").alias("_group_dx"), F.count("*").alias("_images"))
    lesions = lesions.withColumn("_order", F.xxhash64(F.lit(seed), "_group"))

    def share_out(table: pd.DataFrame) -> pd.DataFrame:
        table = table.sort_values(["_images", "_order", "_group"], ascending=[False, True, True])
        held, chosen = [0] * folds, []
        for images in table["_images"]:
            fold = min(range(folds), key=lambda index: (held[index], index))
            held[fold] += int(images)
            chosen.append(fold)
        return pd.DataFrame({"_group": table["_group"].to_numpy(), "fold": chosen})

    assigned = lesions.groupBy("_group_dx").applyInPandas(share_out, "_group string, fold int")
    return frame.join(assigned, "_group").drop("_group")


def count_and_training_mean_age(frame: DataFrame) -> tuple[int, float | None]:
    """The rows, and the training split's mean age, the value Benedetti et al. imputed: over
    training rows only, so that validation and test leak nothing into it. Taken before decoding
    (every training row with its file), since each image is written the moment it is decoded.
    One job for both."""
    row = frame.agg(F.count(F.lit(1)).alias("rows"),
                    F.avg(F.when(F.col("split") == "train", F.col("age"))).alias("age")).first()
    return row["rows"], row["age"]


def impute_age(frame: DataFrame, mean: float | None) -> DataFrame:
    """Missing ages become `mean`; `age_imputed` says which were."""
    imputed = frame.withColumn("age_imputed", F.col("age").isNull())
    if mean is not None:
        imputed = imputed.withColumn("age", F.coalesce("age", F.lit(float(mean))))
    return imputed
