"""The distributions the papers show, of what was written: JSON and PNG plots beside the dataset.

Counts only, overall and per split; the rows are never written nor logged. Ages go in 5-year bins.
Counted on the driver from the written rows ingest collects once for the manifest too.
"""

import json
from collections import Counter

import numpy as np
import pandas as pd

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


def distributions(written: pd.DataFrame) -> dict:
    """{column: {"all": {value: count}, "train": {...}, ...}} with missing values as "unknown"."""
    ages = np.floor(written["age"].astype("float64").to_numpy() / 5) * 5
    frame = pd.DataFrame(
        {
            "split": written["split"],
            "class_name": written["class_name"],
            "dx_type": written["dx_type"],
            "localization": written["localization"],
            "sex": written["sex"],
            "age_bin": pd.Series(ages, index=written.index).astype("Int64"),
        }
    )
    result = {}
    for column in COLUMNS:
        # Counted by (split, value) first and named after: a few dozen keys to turn into text,
        # not a conversion of every row.
        table: dict[str, Counter] = {"all": Counter()}
        for (split, value), count in frame.groupby(["split", column], dropna=False).size().items():
            name = "unknown" if pd.isna(value) else str(value)
            table["all"][name] += int(count)
            if not pd.isna(split):
                table.setdefault(split, Counter())[name] += int(count)
        order = sorted if column != "age_bin" else (lambda keys: sorted(keys, key=_age_key))
        result[column] = {
            split: {value: counts[value] for value in order(counts)} for split, counts in sorted(table.items())
        }
    return result


def _age_key(value: str) -> float:
    return float(value) if value.lstrip("-").isdigit() else float("inf")


def write_distributions(written: pd.DataFrame, folder_url: str) -> dict:
    """Writes distributions.json and one PNG per column under folder_url; returns the table."""
    tables = distributions(written)
    storage.write_text(join(folder_url, "distributions.json"), json.dumps(tables, indent=2))
    for column, table in tables.items():
        plots.bars(table, TITLES[column], join(folder_url, f"{column}.png"))
    return tables
