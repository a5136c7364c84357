"""How a model does per subgroup: anatomical site, sex, 20-year age band and how the diagnosis was
confirmed, from a table of predictions with their truth, lesion and metadata (a training's
test_predictions.parquet, a cross-validation's out-of-fold table).

Per group: images, lesions, balanced accuracy over the classes present, expected calibration
error, melanoma sensitivity per image and per lesion (a melanoma lesion counts as found when any
of its images is flagged) and specificity per image, each with a 95% interval over resamples of
the group's lesions. A group of fewer than MIN_LESIONS lesions is "too few to judge": its counts
are shown, no figure; melanoma sensitivity needs MIN_MELANOMA_LESIONS melanoma lesions. pandas
does the grouping; fairlearn's MetricFrame would too, but its bootstrap resamples images, and a
lesion's images must stand or fall together.
"""

from typing import Any

import numpy as np
import pandas as pd

from dermspark.report.calibration import reliability
from dermspark.report.metrics import group_resamples, percentiles

MIN_LESIONS = 30
# Sensitivity on a handful of melanomas is a coin toss: below this many melanoma lesions it is not given.
MIN_MELANOMA_LESIONS = 10
DRAWS = 200
ATTRIBUTES = ("localization", "sex", "age_band", "dx_type")
FIGURES = (
    "balanced_accuracy",
    "ece",
    "melanoma_sensitivity",
    "melanoma_sensitivity_per_lesion",
    "melanoma_specificity",
)


def age_band(age) -> str:
    if age is None or pd.isna(age):
        return "unknown"
    low = min(int(age) // 20 * 20, 80)
    return "80+" if low == 80 else f"{low}-{low + 19}"


def _figures(labels, probabilities, flags, lesions, melanoma: int | None) -> dict:
    """Every figure of one set of rows; None where its rows do not define it."""
    predicted = probabilities.argmax(axis=1)
    present = np.unique(labels)
    recalls = [np.mean(predicted[labels == label] == label) for label in present]
    found = {"balanced_accuracy": float(np.mean(recalls)), "ece": reliability(probabilities, labels)["ece"]}
    positive = labels == melanoma if melanoma is not None else np.zeros(len(labels), bool)
    found["melanoma_sensitivity"] = float(flags[positive].mean()) if flags is not None and positive.any() else None
    found["melanoma_specificity"] = (
        float(1 - flags[~positive].mean()) if flags is not None and melanoma is not None and (~positive).any() else None
    )
    if flags is not None and positive.any():
        _, lesion_of = np.unique(lesions[positive], return_inverse=True)
        found["melanoma_sensitivity_per_lesion"] = float(
            np.mean(np.bincount(lesion_of, weights=flags[positive].astype(np.float64)) > 0)
        )
    else:
        found["melanoma_sensitivity_per_lesion"] = None
    return found


def _group(rows: pd.DataFrame, classes: list[str], melanoma: int | None, draws: int, seed: int) -> dict:
    lesions = rows["lesion_id"].astype(str).to_numpy()
    judged = len(set(lesions)) >= MIN_LESIONS
    entry: dict[str, Any] = {"images": len(rows), "lesions": int(len(set(lesions))), "judged": judged}
    if not entry["judged"]:
        return entry
    index = {name: position for position, name in enumerate(classes)}
    labels = rows["true_label"].map(index).to_numpy()
    probabilities = rows[[f"prob_{name}" for name in classes]].to_numpy(dtype=np.float64)
    flags = rows["melanoma_flag"].to_numpy(dtype=bool) if rows["melanoma_flag"].notna().all() else None
    entry.update(_figures(labels, probabilities, flags, lesions, melanoma))
    entry["melanoma_lesions"] = int(len(set(lesions[labels == melanoma]))) if melanoma is not None else 0
    few = entry["melanoma_lesions"] < MIN_MELANOMA_LESIONS
    if few:
        entry["melanoma_sensitivity"] = entry["melanoma_sensitivity_per_lesion"] = None
    samples: dict[str, list[float]] = {name: [] for name in FIGURES}
    for resample in group_resamples(lesions, draws, seed):
        drawn = _figures(
            labels[resample],
            probabilities[resample],
            None if flags is None else flags[resample],
            lesions[resample],
            melanoma,
        )
        for name in FIGURES:
            if drawn[name] is not None:
                samples[name].append(drawn[name])
    entry["intervals"] = {
        name: percentiles(values) if values and entry[name] is not None else None for name, values in samples.items()
    }
    return entry


def _sensitivity_cell(entry: dict, name: str) -> str:
    if entry["melanoma_lesions"] and entry["melanoma_lesions"] < MIN_MELANOMA_LESIONS:
        return f"too few melanomas ({entry['melanoma_lesions']})"
    return _cell(entry, name)


def subgroups(frame: pd.DataFrame, classes: list[str], melanoma: int | None, draws: int = DRAWS, seed: int = 0) -> dict:
    """frame: true_label, prob_CLASS, melanoma_flag, lesion_id and the metadata columns."""
    frame = frame.assign(age_band=frame["age"].map(age_band) if "age" in frame else "unknown")
    by: dict[str, dict] = {}
    for attribute in ATTRIBUTES:
        values = (
            frame[attribute].fillna("unknown").astype(str)
            if attribute in frame
            else pd.Series("unknown", index=frame.index)
        )
        by[attribute] = {
            str(value): _group(rows, classes, melanoma, draws, seed) for value, rows in frame.groupby(values, sort=True)
        }
    return {"min_lesions": MIN_LESIONS, "draws": draws, "by": by}


def _cell(entry: dict, name: str) -> str:
    value = entry.get(name)
    if value is None:
        return "n/a"
    interval = (entry.get("intervals") or {}).get(name)
    return f"{value:.3f}" + (f" ({interval[0]:.3f}-{interval[1]:.3f})" if interval else "")


def markdown_lines(found: dict, title: str = "Subgroups") -> list[str]:
    """The report section: a table per attribute."""
    lines = [
        "",
        f"## {title}",
        "",
        f"95% intervals over {found['draws']} resamples of each group's lesions; a group of fewer than "
        f"{found['min_lesions']} lesions is too few to judge, and melanoma sensitivity needs "
        f"{MIN_MELANOMA_LESIONS} melanoma lesions. Sensitivity per lesion: a melanoma lesion counts as "
        "found when any of its images is flagged.",
    ]
    for attribute, groups in found["by"].items():
        lines += [
            "",
            f"### By {attribute.replace('_', ' ')}",
            "",
            "| group | images | lesions | balanced accuracy | ECE | melanoma sensitivity | per lesion | specificity |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for value, entry in groups.items():
            if not entry["judged"]:
                lines.append(f"| {value} | {entry['images']} | {entry['lesions']} | too few to judge | | | | |")
                continue
            lines.append(
                f"| {value} | {entry['images']} | {entry['lesions']} | "
                + " | ".join(
                    _sensitivity_cell(entry, name) if "sensitivity" in name else _cell(entry, name) for name in FIGURES
                )
                + " |"
            )
    return lines
