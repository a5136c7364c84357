"""The distributions the papers show, of what was written: JSON and PNG plots beside the dataset.

Counts only, overall and per split; no row-level metadata leaves Spark. Ages go in 5-year bins.
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


def distributions(written: DataFrame) -> dict:
    """{column: {"all": {value: count}, "train": {...}, ...}} with missing values as "unknown".
    One aggregation over (split, column, value) pairs, not one job per column."""
    frame = written.withColumn("age_bin", (F.floor(F.col("age") / 5) * 5).cast("int"))
    pairs = F.explode(F.array(*[
        F.struct(F.lit(column).alias("column"),
                 F.coalesce(F.col(column).cast("string"), F.lit("unknown")).alias("value"))
        for column in COLUMNS
    ])).alias("pair")
    rows = (
        frame.select("split", pairs)
        .groupBy("split", "pair.column", "pair.value")
        .count()
        .collect()
    )
    tables: dict[str, dict[str, dict[str, int]]] = {column: {"all": {}} for column in COLUMNS}
    for row in rows:
        table = tables[row["column"]]
        table.setdefault(row["split"], {})[row["value"]] = row["count"]
        table["all"][row["value"]] = table["all"].get(row["value"], 0) + row["count"]
    result = {}
    for column, table in tables.items():
        order = sorted if column != "age_bin" else (lambda values: sorted(values, key=_age_key))
        result[column] = {split: {value: counts[value] for value in order(counts)}
                          for split, counts in sorted(table.items())}
    return result


def _age_key(value: str) -> float:
    return float(value) if value.lstrip("-").isdigit() else float("inf")


def write_distributions(written: DataFrame, folder_url: str) -> dict:
    """Writes distributions.json and one PNG per column under folder_url; returns the table."""
    tables = distributions(written)
    storage.write_text(join(folder_url, "distributions.json"), json.dumps(tables, indent=2))
    for column, table in tables.items():
        plots.bars(table, TITLES[column], join(folder_url, f"{column}.png"))
    return tables
