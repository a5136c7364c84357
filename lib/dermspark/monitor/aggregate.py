"""The one Spark pass of the monitor job: each scoring run of the predictions table summed up.

A run's partitions are listed (`model_version=V/scoring_date=D/run_id=R`, each complete once it
is there: scoring commits whole runs), and only runs the monitor has not summed before are read,
only the columns it needs. One grouping gives, per run, the count of rows for each combination
of predicted class, 0.01-wide confidence bin, error, melanoma flag and review reason: a few
hundred rows a run, whatever its size, from which the driver makes everything else.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from dermspark import storage
from dermspark.report.drift import HISTOGRAM_BINS

# Read when the table has them; a table from before the review flag has no review columns.
OPTIONAL = {"melanoma_flag": "boolean", "review": "boolean", "review_reason": "string"}


@dataclass(frozen=True)
class Partition:
    model_version: str
    scoring_date: str
    run_id: str
    url: str


@dataclass(frozen=True, kw_only=True)
class RunCounts:
    """One scoring run summed up: what the periods add together, and what the monitor's state
    file keeps so that a later report reads only new runs."""

    model_version: str
    scoring_date: str
    run_id: str
    bundle_sha256: str | None
    started: str | None  # the first row's scoring time
    rows: int
    scored: int
    errors: dict[str, int]  # by reason
    class_counts: dict[str, int]  # scored rows by predicted class
    confidence_histogram: list[int]  # HISTOGRAM_BINS bins of the top probability
    melanoma_flags: int
    review: dict | None  # flagged, by_reason; None for a table without the review flag
    input: str | None = None  # the last part of the run's --input, once the job has looked

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunCounts":
        known = {item.name for item in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def partitions(table_url: str, since: str | None = None) -> list[Partition]:
    """Every run in the table (on or after `since`, a YYYY-MM-DD date)."""
    found = []
    for name in storage.glob_relative(table_url, "model_version=*/scoring_date=*/run_id=*"):
        parts = dict(part.split("=", 1) for part in name.split("/"))
        if since is None or parts["scoring_date"] >= since:
            found.append(
                Partition(
                    _unescape(parts["model_version"]),
                    parts["scoring_date"],
                    parts["run_id"],
                    storage.join(table_url, name),
                )
            )
    return sorted(found, key=lambda part: (part.scoring_date, part.run_id))


def _unescape(value: str) -> str:
    """Spark escapes a partition value's `/` (and `%`) as %2F (%25)."""
    from urllib.parse import unquote

    return unquote(value)


def summarise(spark: SparkSession, table_url: str, runs: list[Partition]) -> list[RunCounts]:
    """Each run's counts: rows, errors by reason, predicted classes, the confidence histogram,
    melanoma flags, and review flags by reason (None where the table has no review flag)."""
    if not runs:
        return []
    from pyspark.sql import functions as F

    # Merged: runs of other model versions hold other prob_ columns, and older runs no review.
    frame = spark.read.option("basePath", table_url).option("mergeSchema", "true").parquet(*[run.url for run in runs])
    columns = set(frame.columns)
    bucket = F.least(F.floor(F.col("confidence") * HISTOGRAM_BINS), F.lit(HISTOGRAM_BINS - 1)).cast("int")
    optional = [
        (F.col(name) if name in columns else F.lit(None).cast(kind)).alias(name) for name, kind in OPTIONAL.items()
    ]
    grouped: pd.DataFrame = (
        frame.select(
            F.col("run_id").cast("string"),
            F.col("bundle_sha256"),
            F.col("predicted_label"),
            bucket.alias("bin"),
            F.col("error"),
            F.col("scored_at"),
            *optional,
        )
        .groupBy("run_id", "bundle_sha256", "predicted_label", "bin", "error", *OPTIONAL)
        .agg(F.count(F.lit(1)).alias("rows"), F.min("scored_at").alias("first"))
        .toPandas()
    )
    has_review = "review" in columns
    # Split once: a mask per run would scan every run's rows again for each run.
    by_run = dict(tuple(grouped.groupby("run_id", sort=False)))
    return [_run_record(run, by_run.get(run.run_id, grouped.iloc[:0]), has_review) for run in runs]


def _run_record(run: Partition, rows: pd.DataFrame, has_review: bool) -> RunCounts:
    scored = rows[rows["error"].isna()]
    errors = rows[rows["error"].notna()].groupby("error")["rows"].sum()
    histogram = np.zeros(HISTOGRAM_BINS, dtype=int)
    bins = scored.dropna(subset=["bin"])
    np.add.at(histogram, bins["bin"].astype(int).to_numpy(), bins["rows"].to_numpy())
    flagged = scored[scored["review"].fillna(False).astype(bool)]
    first = rows["first"].min()
    return RunCounts(
        model_version=run.model_version,
        scoring_date=run.scoring_date,
        run_id=run.run_id,
        bundle_sha256=next(iter(rows["bundle_sha256"].dropna()), None),
        started=None if pd.isna(first) else pd.Timestamp(first).isoformat(),
        rows=int(rows["rows"].sum()),
        scored=int(scored["rows"].sum()),
        errors={str(reason): int(count) for reason, count in errors.items()},
        class_counts={str(name): int(count) for name, count in scored.groupby("predicted_label")["rows"].sum().items()},
        confidence_histogram=histogram.tolist(),
        melanoma_flags=int(scored.loc[scored["melanoma_flag"].fillna(False).astype(bool), "rows"].sum()),
        review={
            "flagged": int(flagged["rows"].sum()),
            "by_reason": {
                str(reason): int(count) for reason, count in flagged.groupby("review_reason")["rows"].sum().items()
            },
        }
        if has_review
        else None,
    )
