"""Lesion-grouped, class-stratified, seeded train/validation/test split.

HAM10000 holds 10,015 images of 7,470 lesions; a split by image puts the same lesion on both sides
and inflates test accuracy. Here a whole lesion goes to one split, and each class is split in the
requested ratios on its own, so rare classes reach every split.
"""

import struct

import numpy as np
import pandas as pd
import xxhash

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


def spark_xxhash64(seed: int, text: str) -> int:
    """Spark's `xxhash64(lit(seed), text)`: XXH64 of the seed's bytes (4 for a 32-bit seed, 8
    beyond, as Spark types the literal) with Spark's seed 42, then of the text's UTF-8 bytes
    seeded by that, as a signed 64-bit number. Computed here so that the split made on the
    driver is the one Spark made before."""
    packed = struct.pack("<i", seed) if -(1 << 31) <= seed < (1 << 31) else struct.pack("<q", seed)
    first = xxhash.xxh64_intdigest(packed, 42)
    value = xxhash.xxh64_intdigest(text.encode("utf-8"), first)
    return value - (1 << 64) if value >= (1 << 63) else value


def lesion_groups(frame: pd.DataFrame) -> pd.Series:
    """A row's group: its lesion id, or its image id where it has none (an image alone)."""
    lesion = frame["lesion_id"].astype("string").str.strip()
    return lesion.where(lesion.str.len() > 0).fillna(frame["image_id"]).astype(object)


def lesion_table(frame: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """One row per lesion: `_group`, `_group_dx` (its class, the first by name: HAM10000 gives
    each lesion one diagnosis), `_images`. By sorting, not a grouped min: pandas takes the min of
    strings in Python, one group at a time (2 s at 40,000 images)."""
    rows = pd.DataFrame({"_group": groups.to_numpy(), "_group_dx": frame["class_name"].to_numpy()})
    images = rows["_group"].value_counts()
    lesions = rows.sort_values("_group_dx", kind="stable").drop_duplicates("_group").reset_index(drop=True)
    return lesions.assign(_images=lesions["_group"].map(images).to_numpy())


def assign_splits(frame: pd.DataFrame, ratios: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """Adds `split` to rows with `image_id`, `lesion_id` (may be empty) and `class_name`."""
    groups = lesion_groups(frame)
    lesions = lesion_table(frame, groups)
    # Seeded hash, not a random draw: the same input gives the same split on every rerun.
    lesions["_order"] = [spark_xxhash64(seed, group) for group in lesions["_group"]]
    lesions = lesions.sort_values(["_group_dx", "_order", "_group"], kind="stable")
    rank = lesions.groupby("_group_dx").cumcount() + 1
    position = (rank - 0.5) / lesions.groupby("_group_dx")["_group"].transform("size")
    train, validation, _ = ratios
    lesions["split"] = np.where(position < train, "train", np.where(position < train + validation, "validation", "test"))
    return frame.assign(split=groups.map(dict(zip(lesions["_group"], lesions["split"], strict=True))))


def assign_folds(frame: pd.DataFrame, folds: int, seed: int) -> pd.DataFrame:
    """Adds `fold` (0 to folds-1) to rows with `image_id`, `lesion_id` and `class_name`: every
    lesion whole in one fold, and each class's images shared out evenly. Within a class, lesions
    go largest first (ties in a seeded order) to the fold holding the fewest of its images so
    far."""
    if folds < 2:
        raise ValueError(f"--folds needs at least 2 folds, got {folds}")
    groups = lesion_groups(frame)
    lesions = lesion_table(frame, groups)
    lesions["_order"] = [spark_xxhash64(seed, group) for group in lesions["_group"]]
    chosen: dict[str, int] = {}
    for _, table in lesions.groupby("_group_dx"):
        table = table.sort_values(["_images", "_order", "_group"], ascending=[False, True, True])
        held = [0] * folds
        for group, images in zip(table["_group"], table["_images"], strict=True):
            fold = min(range(folds), key=lambda index: (held[index], index))
            held[fold] += int(images)
            chosen[group] = fold
    return frame.assign(fold=groups.map(chosen).astype("int32"))


def training_mean_age(frame: pd.DataFrame) -> float | None:
    """The training split's mean age, the value Benedetti et al. imputed; over training rows
    only, so that validation and test leak nothing into it. Taken before decoding (every
    training row with its file), since each image is written the moment it is decoded."""
    mean = frame.loc[frame["split"] == "train", "age"].mean()
    return None if pd.isna(mean) else float(mean)


def impute_age(frame: pd.DataFrame, mean: float | None) -> pd.DataFrame:
    """Missing ages become `mean`; `age_imputed` says which were."""
    imputed = frame.assign(age_imputed=frame["age"].isna())
    if mean is not None:
        imputed["age"] = imputed["age"].fillna(mean)
    return imputed
