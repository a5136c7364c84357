"""The distributions the papers show, of what was written: JSON and PNG plots beside the dataset.

Counts only, overall and per split; no row-level metadata leaves Spark. Ages go in 5-year bins.
"""

import json
import os
import tempfile

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dermspark import storage
from dermspark.plots import pyplot, save
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


def _plot(column: str, table: dict, path: str) -> None:
    values = list(table["all"])
    splits = [split for split in ("train", "validation", "test") if split in table]
    figure, axis = pyplot().subplots(figsize=(max(6, 0.5 * len(values) + 2), 4))
    width = 0.8 / max(1, len(splits))
    for index, split in enumerate(splits):
        positions = [position + index * width for position in range(len(values))]
        axis.bar(positions, [table[split].get(value, 0) for value in values], width, label=split)
    axis.set_xticks([position + 0.4 - width / 2 for position in range(len(values))])
    axis.set_xticklabels(values, rotation=45, ha="right")
    axis.set_ylabel("images")
    axis.set_title(TITLES[column])
    if splits:  # an archive with no usable image has nothing to label
        axis.legend()
    save(figure, path)


def write_report(written: DataFrame, folder_url: str) -> dict:
    """Writes distributions.json and one PNG per column under folder_url; returns the table."""
    tables = distributions(written)
    storage.write_text(join(folder_url, "distributions.json"), json.dumps(tables, indent=2))
    # Plots are drawn locally, then copied through the storage layer so any output store works.
    with tempfile.TemporaryDirectory() as local:
        for column, table in tables.items():
            path = os.path.join(local, f"{column}.png")
            _plot(column, table, path)
            storage.put_file(path, join(folder_url, f"{column}.png"))
    return tables
