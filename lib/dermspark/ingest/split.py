"""Lesion-grouped, class-stratified, seeded train/validation/test split.

HAM10000 holds 10,015 images of 7,470 lesions; a split by image puts the same lesion on both sides
and inflates test accuracy. Here a whole lesion goes to one split, and each class is split in the
requested ratios on its own, so rare classes reach every split.
"""

import struct

import numpy as np
import pandas as pd
import xxhash

from dermspark import DermsparkError

SPLITS = ("train", "validation", "test")
PRESETS = {"80/10/10": (0.8, 0.1, 0.1), "80/20": (0.8, 0.0, 0.2), "70/10/20": (0.7, 0.1, 0.2)}


def recipe_ratios(text: str) -> str:
    """`recipe:NAME` is that model recipe's paper split (huber_cnn: 70/10/20); anything else is
    ratios already."""
    if not text.startswith("recipe:"):
        return text
    from dermspark.models import get_recipe

    return get_recipe(text.split(":", 1)[1]).split  # an unknown one's error names the known models


def parse_ratios(text: str) -> tuple[float, float, float]:
    """'80/10/10' -> (0.8, 0.1, 0.1); two parts mean no validation split."""
    if text in PRESETS:
        return PRESETS[text]
    try:
        parts = [float(part) for part in text.split("/")]
    except ValueError:
        raise DermsparkError(f"split {text!r} is not like 80/10/10") from None
    if len(parts) == 2:
        parts = [parts[0], 0.0, parts[1]]
    if len(parts) != 3 or any(part < 0 for part in parts) or sum(parts) <= 0:
        raise DermsparkError(f"split {text!r} needs three non-negative parts, e.g. 80/10/10")
    total = sum(parts)
    return parts[0] / total, parts[1] / total, parts[2] / total


def _seed_hash(seed: int) -> int:
    packed = struct.pack("<i", seed) if -(1 << 31) <= seed < (1 << 31) else struct.pack("<q", seed)
    return xxhash.xxh64_intdigest(packed, 42)


def spark_xxhash64(seed: int, text: str) -> int:
    """Spark's `xxhash64(lit(seed), text)`: XXH64 of the seed's bytes (4 for a 32-bit seed, 8
    beyond, as Spark types the literal) with Spark's seed 42, then of the text's UTF-8 bytes
    seeded by that, as a signed 64-bit number. Computed here so that the split made on the
    driver is the one Spark made before."""
    return int(spark_xxhash64s(seed, [text])[0])


def spark_xxhash64s(seed: int, texts) -> np.ndarray:
    """spark_xxhash64 of every text, as int64, the seed's part hashed once."""
    first = _seed_hash(seed)
    digests = np.fromiter(
        (xxhash.xxh64_intdigest(text.encode("utf-8"), first) for text in texts), dtype=np.uint64, count=len(texts)
    )
    return digests.view(np.int64)


def _text(value) -> str:
    if isinstance(value, str):
        return value.strip()
    return "" if pd.isna(value) else str(value).strip()


def lesion_groups(frame: pd.DataFrame) -> pd.Series:
    """A row's group: its lesion id, or its image id where it has none (an image alone)."""
    groups = [_text(lesion) or image for lesion, image in zip(frame["lesion_id"], frame["image_id"], strict=True)]
    return pd.Series(groups, index=frame.index, dtype=object)


def grouping(frame: pd.DataFrame) -> dict:
    """How the split grouped these rows: images with a lesion id of their own kind (grouped by
    lesion) and images alone (no lesion id, or one that repeats the image id: split by image)."""
    groups = lesion_groups(frame)
    alone = int((groups == frame["image_id"]).sum())
    return {"lesion": len(frame) - alone, "image": alone}


def lesion_table(frame: pd.DataFrame, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Each row's lesion, as a position in the table, and the table: one row per lesion with
    `_group`, `_group_dx` (its class, the first by name: HAM10000 gives each lesion one
    diagnosis), `_dx` (that class's rank by name), `_images` and `_order` (its seeded hash). In
    numpy over the lesions' codes: pandas' grouping and sorting of the ids as text took 0.15 to
    0.25 s at 40,000 images."""
    lesion_of, groups = pd.factorize(lesion_groups(frame).to_numpy())
    dx_of, names = pd.factorize(frame["class_name"].to_numpy(), sort=True)
    first_dx = np.full(len(groups), len(names), dtype=np.int64)
    np.minimum.at(first_dx, lesion_of, dx_of)
    lesions = pd.DataFrame(
        {
            "_group": np.asarray(groups, dtype=object),
            "_group_dx": np.asarray(names, dtype=object)[first_dx],
            "_images": np.bincount(lesion_of, minlength=len(groups)),
            "_order": spark_xxhash64s(seed, groups),
            "_dx": first_dx,
        }
    )
    return lesion_of, lesions


def _by_class_then_hash(lesions: pd.DataFrame) -> np.ndarray:
    """The lesions' positions sorted by class, seeded hash and id. Two equal hashes in one class
    are a 64-bit collision, but the order must still not depend on the input's."""
    dx, order = lesions["_dx"].to_numpy(), lesions["_order"].to_numpy()
    by = np.lexsort((order, dx))
    if ((dx[by][1:] == dx[by][:-1]) & (order[by][1:] == order[by][:-1])).any():
        name_rank = np.argsort(np.argsort(lesions["_group"].to_numpy(), kind="stable"), kind="stable")
        by = np.lexsort((name_rank, order, dx))
    return by


def lesion_splits(frame: pd.DataFrame, ratios: tuple[float, float, float], seed: int) -> np.ndarray:
    """Each row's split, for rows with `image_id`, `lesion_id` (may be empty) and `class_name`.
    Columns, not a frame: the caller sets them in place (a copy of every column per step cost
    0.03 s at 40,000 images)."""
    lesion_of, lesions = lesion_table(frame, seed)
    # Seeded hash, not a random draw: the same input gives the same split on every rerun.
    by = _by_class_then_hash(lesions)
    dx = lesions["_dx"].to_numpy()[by]
    rank = np.arange(len(by)) - np.searchsorted(dx, dx, side="left") + 1
    position = (rank - 0.5) / np.bincount(dx)[dx]
    train, validation, _ = ratios
    split = np.empty(len(by), dtype=object)
    split[by] = np.where(position < train, "train", np.where(position < train + validation, "validation", "test"))
    return split[lesion_of]


def lesion_folds(frame: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Each row's fold (0 to folds-1), for rows with `image_id`, `lesion_id` and `class_name`: every
    lesion whole in one fold, and each class's images shared out evenly. Within a class, lesions
    go largest first (ties in a seeded order) to the fold holding the fewest of its images so
    far."""
    if folds < 2:
        raise ValueError(f"--folds needs at least 2 folds, got {folds}")
    lesion_of, lesions = lesion_table(frame, seed)
    fold_of = np.zeros(len(lesions), dtype=np.int32)
    for _, table in lesions.groupby("_group_dx"):
        table = table.sort_values(["_images", "_order", "_group"], ascending=[False, True, True])
        held = [0] * folds
        for lesion, images in zip(table.index, table["_images"], strict=True):
            fold = min(range(folds), key=lambda index: (held[index], index))
            held[fold] += int(images)
            fold_of[lesion] = fold
    return fold_of[lesion_of]


def training_mean_age(frame: pd.DataFrame) -> float | None:
    """The training split's mean age, the value Benedetti et al. imputed; over training rows
    only, so that validation and test leak nothing into it. Taken before decoding (every
    training row with its file), since each image is written the moment it is decoded."""
    mean = frame.loc[frame["split"] == "train", "age"].mean()
    return None if pd.isna(mean) else float(mean)


def impute_age(ages: pd.Series, mean: float | None) -> tuple[pd.Series, pd.Series]:
    """The ages with the missing ones `mean`, and which were missing."""
    missing = ages.isna()
    return (ages if mean is None else ages.fillna(mean)), missing
