"""Every metadata row and every file ends in exactly one place: the dataset or the rejects.

`match` pairs metadata rows with files and rejects what cannot be paired; `manifest` counts the
outcome and checks that inputs = written + rejected, counted independently of the rejects.
"""

from collections import Counter

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from dermspark.ingest.sources import Archive

# A file claimed by a bad metadata row: rejected with that row, not on its own.
CLAIMED = "_claimed"
# Kept with every written image; never logged (patient metadata).
METADATA_COLUMNS = ("age", "sex", "localization", "dx_type")


def _reject(frame: DataFrame, origin: str, reason, detail="") -> DataFrame:
    return frame.select(
        F.lit(origin).alias("origin"),
        F.col("image_id"),
        F.col("path") if "path" in frame.columns else F.lit(None).cast("string").alias("path"),
        (reason if not isinstance(reason, str) else F.lit(reason)).alias("reason"),
        (detail if not isinstance(detail, str) else F.lit(detail)).alias("detail"),
    )


def match(archive: Archive, mapping: dict[str, str]) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Returns (candidates to decode, rejects so far, pairs) where pairs counts joined inputs.
    `mapping` takes the archive's diagnoses to the label space's classes (labels.label_mapping);
    candidates carry the result as `class_name`."""
    metadata, files = archive.metadata, archive.files
    first_row = Window.partitionBy("image_id").orderBy("_row")
    bad = (
        F.col("_malformed")
        | F.col("image_id").isNull()
        | (F.col("image_id") == "")
        | F.col("dx").isNull()
    )
    metadata = metadata.withColumn("_bad", bad)
    rows = metadata.filter(~F.col("_bad")).withColumn("_nth", F.row_number().over(first_row))
    first_file = Window.partitionBy("image_id").orderBy("path")
    files = files.withColumn("_nth", F.row_number().over(first_file))

    kept_rows = rows.filter("_nth = 1").drop("_nth", "_bad", "_malformed")
    kept_files = files.filter("_nth = 1").drop("_nth")
    # A file whose only rows are bad belongs to the first bad row's reject: one input, not a
    # bad row plus a file without metadata.
    bad_ids = metadata.filter(F.col("_bad") & F.col("image_id").isNotNull() & (F.col("image_id") != ""))
    claimed = bad_ids.select("image_id").distinct().withColumn("_claimed", F.lit(True))
    # One row per input, no image bytes: small, and read by several later steps, so it is
    # computed once here instead of once per step. Kept with its lineage (not a local
    # checkpoint, whose blocks die with their executor): a lost block is computed again.
    joined = (kept_rows.join(kept_files, "image_id", "full_outer").join(claimed, "image_id", "left")
              .persist(StorageLevel.MEMORY_AND_DISK))

    to_class = F.create_map(*[F.lit(item) for pair in sorted(mapping.items()) for item in pair])
    joined = joined.withColumn("class_name", to_class[F.col("dx")])
    known = F.col("class_name").isNotNull()
    reason = (
        F.when(F.col("path").isNull(), "missing_file")
        .when(F.col("_row").isNull() & F.col("_claimed").isNotNull(), CLAIMED)
        .when(F.col("_row").isNull(), "no_metadata")
        .when(~known, "unknown_label")
    )
    joined = joined.withColumn("_reason", reason)
    files_of_bad_rows = joined.filter(F.col("_reason") == CLAIMED).select("image_id", "path")
    bad_rows = (metadata.filter("_bad").withColumn("_nth", F.row_number().over(first_row))
                .join(files_of_bad_rows, "image_id", "left")
                .withColumn("path", F.when(F.col("_nth") == 1, F.col("path"))))
    rejects = (
        _reject(
            bad_rows,
            "metadata",
            "bad_row",
            F.when(F.col("_malformed"), "wrong number of fields").otherwise("image id or diagnosis missing"),
        )
        .unionByName(_reject(rows.filter("_nth > 1"), "metadata", "duplicate_id"))
        .unionByName(_reject(files.filter("_nth > 1"), "file", "duplicate_id"))
        .unionByName(
            _reject(
                joined.filter(F.col("_reason").isNotNull() & (F.col("_reason") != CLAIMED)),
                "metadata",
                F.col("_reason"),
            ).withColumn("origin", F.when(F.col("reason") == "no_metadata", "file").otherwise("metadata"))
        )
    )
    candidates = joined.filter(F.col("_reason").isNull()).select(
        "image_id", "lesion_id", "dx", "class_name", "path", *METADATA_COLUMNS
    )
    pairs = joined.filter((F.col("path").isNotNull() & F.col("_row").isNotNull()) | (F.col("_reason") == CLAIMED))
    return candidates, rejects, pairs


def count_inputs(archive: Archive, pairs: DataFrame) -> int:
    """Metadata rows plus files, a row and its file counting once (a bad row's too). One job:
    each small Spark job costs a large image's decoding in fixed overhead."""
    def counted(frame: DataFrame, name: str) -> DataFrame:
        return frame.agg(F.count(F.lit(1)).alias(name))

    row = counted(archive.metadata, "rows").crossJoin(counted(archive.files, "files")).crossJoin(
        counted(pairs, "pairs")).first()
    return row["rows"] + row["files"] - row["pairs"]


REJECT_COLUMNS = ("origin", "image_id", "path", "reason", "detail", "split")


def write_rejects(rejects: DataFrame, url: str) -> dict[str, int]:
    """One Parquet file of every rejected input, written through the storage layer (a row per
    reject, small next to the images): returns the count of each reason, from what was written."""
    import pyarrow as pa

    from dermspark import storage

    rows = rejects.select(*REJECT_COLUMNS).collect()
    table = pa.table({name: pa.array([row[name] for row in rows], pa.string()) for name in REJECT_COLUMNS})
    storage.write_parquet(table, url)
    return dict(Counter(table.column("reason").to_pylist()))


def tally_extra() -> dict:
    """The tally's extra columns (report.distributions.tally): what the manifest needs beyond the
    report's own columns, so that one aggregation serves both."""
    return {"_fold_class": F.concat_ws("/", F.col("fold").cast("string"), F.col("class_name")),
            "_age_imputed": F.col("age_imputed")}


def manifest(inputs: int, counts: list[tuple[str, str, str, int]], by_reason: dict[str, int], folds: int = 0) -> dict:
    """The manifest's counts from the tally of the written rows."""
    per_class: dict[str, int] = {}
    per_split: dict[str, dict[str, int]] = {}
    per_fold: dict[str, dict[str, int]] = {}
    for split, column, value, count in counts:
        if column == "class_name":
            per_class[value] = per_class.get(value, 0) + count
            per_split.setdefault(split, {})[value] = count
        elif column == "_fold_class" and folds:
            fold, class_name = value.split("/", 1)
            per_fold.setdefault(fold, {})[class_name] = per_fold.get(fold, {}).get(class_name, 0) + count
    total_written = sum(per_class.values())
    total_rejected = sum(by_reason.values())
    if inputs != total_written + total_rejected:
        raise RuntimeError(
            f"accounting mismatch: {inputs} inputs but {total_written} written + "
            f"{total_rejected} rejected; this is a dermspark bug, please report it"
        )
    return {
        "inputs": inputs,
        "written": total_written,
        "rejected": total_rejected,
        "by_reason": dict(sorted(by_reason.items())),
        "per_class": dict(sorted(per_class.items())),
        "per_split": {split: dict(sorted(counts.items())) for split, counts in sorted(per_split.items())},
        "folds": folds,
        # Images per fold and class, what train --cv plans each fold's training from.
        "per_fold": ({fold: dict(sorted(classes.items())) for fold, classes in sorted(per_fold.items(), key=lambda x: int(x[0]))}
                     if folds else None),
    }


def imputed_ages(counts: list[tuple[str, str, str, int]]) -> int:
    return sum(count for _, column, value, count in counts if column == "_age_imputed" and value == "true")
