"""The distributions the papers show, of what was written: JSON and PNG plots beside the dataset.

Counts only, overall and per split; no row-level metadata leaves Spark. Ages go in 5-year bins.
The counts come from ingest's one tally of the written rows (`tally`), which also gives the
manifest its figures, so the whole accounting after decoding is one Spark job.
"""

import json

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dermspark import storage
from dermspark.report import plots
from dermspark.storage import join

COLUMNS = ("class_name", "dx_type", "localization", "sex", "age_bin")
TITLES = {
    "class_name": "Images per class",
    "dx_type": "Diagnosis confirmed by",
    "localization": "Localization",
    "sex": "Sex",
    "age_bin": "Age (5-year bins; imputed ages included)",
}


def tally(written: DataFrame, extra: dict | None = None) -> list[tuple[str, str, str, int]]:
    """(split, column, value, count) for every value of COLUMNS and of the `extra` columns
    ({name: Column}), missing values as "unknown": one aggregation, not one job per column."""
    frame = written.withColumn("age_bin", (F.floor(F.col("age") / 5) * 5).cast("int"))
    columns = {**{column: F.col(column) for column in COLUMNS}, **(extra or {})}
    pairs = F.explode(F.array(*[
        F.struct(F.lit(name).alias("column"), F.coalesce(column.cast("string"), F.lit("unknown")).alias("value"))
        for name, column in columns.items()
    ])).alias("pair")
    rows = frame.select("split", pairs).groupBy("split", "pair.column", "pair.value").count().collect()
    return [(row["split"], row["column"], row["value"], row["count"]) for row in rows]


def distributions(counts: list[tuple[str, str, str, int]]) -> dict:
    """{column: {"all": {value: count}, "train": {...}, ...}} from a tally."""
    tables: dict[str, dict[str, dict[str, int]]] = {column: {"all": {}} for column in COLUMNS}
    for split, column, value, count in counts:
        if column not in tables:
            continue
        table = tables[column]
        table.setdefault(split, {})[value] = count
        table["all"][value] = table["all"].get(value, 0) + count
    result = {}
    for column, table in tables.items():
        order = sorted if column != "age_bin" else (lambda values: sorted(values, key=_age_key))
        result[column] = {split: {value: counts[value] for value in order(counts)}
                          for split, counts in sorted(table.items())}
    return result


def _age_key(value: str) -> float:
    return float(value) if value.lstrip("-").isdigit() else float("inf")


def write_distributions(counts: list[tuple[str, str, str, int]], folder_url: str) -> dict:
    """Writes distributions.json and one PNG per column under folder_url; returns the table."""
    tables = distributions(counts)
    storage.write_text(join(folder_url, "distributions.json"), json.dumps(tables, indent=2))
    for column, table in tables.items():
        plots.bars(table, TITLES[column], join(folder_url, f"{column}.png"))
    return tables
