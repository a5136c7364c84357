"""A cross-validation's summary from its folds' metrics.json: the spread of each fold's test
figures, and the out-of-fold predictions pooled (every image tested exactly once, by the one
model that never saw its lesion)."""

import numpy as np

from dermspark import storage
from dermspark.report import plots
from dermspark.report.evaluation import fmt
from dermspark.report.subgroups import markdown_lines as subgroup_lines
from dermspark.storage import join

SPREAD = ("accuracy", "balanced_accuracy", "macro_auc")


def _mean_sd(values: list) -> dict:
    """Over the folds where the figure is defined; sd with ddof=1 (folds are a sample of splits)."""
    defined = [value for value in values if value is not None]
    if not defined:
        return {"mean": None, "sd": None, "folds": 0}
    return {
        "mean": float(np.mean(defined)),
        "sd": float(np.std(defined, ddof=1)) if len(defined) > 1 else None,
        "folds": len(defined),
    }


def _rates(folds: list[dict]) -> dict | None:
    """Melanoma sensitivity and specificity pooled over the folds' test splits, each fold flagged
    at its own threshold (the one its bundle carries)."""
    points = [fold["operating_point"] for fold in folds]
    if any(point is None or "test" not in point for point in points):
        return None
    tests = [point["test"] for point in points]
    positives = sum(test["positives"] for test in tests)
    negatives = sum(test["negatives"] for test in tests)

    def pooled(key: str, weight: str, total: int):
        if not total:
            return None
        return sum(test[key] * test[weight] for test in tests if test[key] is not None) / total

    return {
        "class": points[0]["class"],
        "target_sensitivity": points[0]["target_sensitivity"],
        "thresholds": [point["threshold"]["temperature"] for point in points],
        "sensitivity": pooled("sensitivity", "positives", positives),
        "positives": positives,
        "specificity": pooled("specificity", "negatives", negatives),
        "negatives": negatives,
        "per_fold": [{"sensitivity": test["sensitivity"], "specificity": test["specificity"]} for test in tests],
    }


EXTERNAL = (
    "accuracy",
    "balanced_accuracy",
    "macro_auc",
    "melanoma_auc",
    "melanoma_sensitivity",
    "melanoma_specificity",
    "ece",
)


def _external_row(section: dict) -> dict:
    melanoma = section.get("melanoma") or {}
    return {
        "count": section["count"],
        "accuracy": section["accuracy"],
        "balanced_accuracy": section["balanced_accuracy"],
        "interval": (section.get("interval") or {}).get("balanced_accuracy"),
        "macro_auc": section["macro_auc"],
        "melanoma_auc": melanoma.get("auc"),
        "melanoma_sensitivity": melanoma.get("sensitivity"),
        "melanoma_specificity": melanoma.get("specificity"),
        "ece": section.get("ece"),
    }


def _externals(folds: list[dict]) -> dict:
    """Each external dataset's figures from every fold's model, and their mean and sd over the
    folds (the folds' models are K models of one recipe, each measured on the same images)."""
    names = [name for name in folds[0].get("external", {}) if all(name in fold.get("external", {}) for fold in folds)]
    result = {}
    for name in names:
        rows = [{"fold": index, **_external_row(fold["external"][name])} for index, fold in enumerate(folds)]
        result[name] = {"per_fold": rows, **{key: _mean_sd([row[key] for row in rows]) for key in EXTERNAL}}
    return result


def _review_row(review: dict) -> dict:
    """Share flagged per split (validation, test, each external dataset) and on the check set
    (`ood`), and each detector's AUROC."""
    shares = {name: found["share"] for name, found in review["splits"].items()}
    if "ood" in review:
        shares["ood"] = review["ood"]["share"]
    return {
        **{f"{name}_flagged": share for name, share in shares.items()},
        **{f"auroc_{method}": found["auroc"] for method, found in review.get("auroc", {}).items()},
    }


def _reviews(folds: list[dict]) -> dict | None:
    """The review flag's figures per fold, and their mean and sd over the folds that have one."""
    rows = [
        {"fold": index, "method": fold["review"]["method"], **_review_row(fold["review"])}
        for index, fold in enumerate(folds)
        if fold.get("review")
    ]
    if not rows:
        return None
    keys = list(dict.fromkeys(key for row in rows for key in row if key not in ("fold", "method")))
    return {"per_fold": rows, **{key: _mean_sd([row.get(key) for row in rows]) for key in keys}}


def summarize(folds: list[dict], classes: list[str]) -> dict:
    """folds: each fold's metrics.json, in fold order."""
    tests = [fold["test"] for fold in folds]
    matrix = np.sum([np.asarray(test["confusion_matrix"]) for test in tests], axis=0)
    support = matrix.sum(axis=1)
    recall = [float(matrix[i, i] / support[i]) if support[i] else None for i in range(len(classes))]
    present = [value for value in recall if value is not None]
    return {
        "folds": len(folds),
        "per_fold": [
            {
                "fold": index,
                "count": test["count"],
                **{key: test[key] for key in SPREAD},
                "interval": test.get("interval"),
                "ece_before": fold["calibration"]["reliability"]["test"]["before"]["ece"],
                "ece_after": fold["calibration"]["reliability"]["test"]["after"]["ece"],
                "temperature": fold["calibration"]["temperature"],
            }
            for index, (fold, test) in enumerate(zip(folds, tests, strict=True))
        ],
        **{key: _mean_sd([test[key] for test in tests]) for key in SPREAD},
        "ece_test": {
            "before": _mean_sd([fold["calibration"]["reliability"]["test"]["before"]["ece"] for fold in folds]),
            "after": _mean_sd([fold["calibration"]["reliability"]["test"]["after"]["ece"] for fold in folds]),
        },
        "pooled": {
            "count": int(matrix.sum()),
            "accuracy": float(np.trace(matrix) / matrix.sum()),
            "balanced_accuracy": float(np.mean(present)),
            "balanced_accuracy_over": [name for name, value in zip(classes, recall, strict=True) if value is not None],
            "recall": dict(zip(classes, recall, strict=True)),
            "support": dict(zip(classes, support.astype(int).tolist(), strict=True)),
            "confusion_matrix": matrix.astype(int).tolist(),
            "confusion_matrix_normalized": np.divide(
                matrix, support[:, None], out=np.zeros(matrix.shape), where=support[:, None] > 0
            )
            .round(4)
            .tolist(),
        },
        "operating_point": _rates(folds),
        "external": _externals(folds),
        "review": _reviews(folds),
    }


def spread(summary: dict, key: str, digits: int = 3) -> str:
    """'MEAN ± SD' of a summary's figure over the folds, n/a where no fold defines it."""
    found = summary[key]
    if found["mean"] is None:
        return "n/a"
    return f"{found['mean']:.{digits}f}" + ("" if found["sd"] is None else f" ± {found['sd']:.{digits}f}")


def markdown(summary: dict, classes: list[str], title: str, notes: list[str]) -> str:
    lines = [
        f"# {title}",
        "",
        *[f"- {note}" for note in notes],
        "",
        "| fold | test images | accuracy | balanced accuracy (95% interval) | macro AUC | ECE before | ECE after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["per_fold"]:
        bounds = (row["interval"] or {}).get("balanced_accuracy")
        interval = f" ({bounds[0]:.3f} to {bounds[1]:.3f})" if bounds else ""
        lines.append(
            f"| {row['fold']} | {row['count']} | {fmt(row['accuracy'])} | "
            f"{fmt(row['balanced_accuracy'])}{interval} | {fmt(row['macro_auc'])} | "
            f"{fmt(row['ece_before'])} | {fmt(row['ece_after'])} |"
        )
    ece = summary["ece_test"]
    lines.append(
        f"| mean ± sd | {sum(row['count'] for row in summary['per_fold'])} | {spread(summary, 'accuracy')} | "
        f"{spread(summary, 'balanced_accuracy')} | {spread(summary, 'macro_auc')} | "
        f"{fmt(ece['before']['mean'])} | {fmt(ece['after']['mean'])} |"
    )
    pooled = summary["pooled"]
    lines += [
        "",
        "## Out-of-fold predictions, pooled",
        "",
        f"Every image tested once, by the model whose training never saw its lesion: {pooled['count']} "
        f"images, accuracy {fmt(pooled['accuracy'])}, balanced accuracy {fmt(pooled['balanced_accuracy'])} "
        f"(over {', '.join(pooled['balanced_accuracy_over'])}).",
        "",
        "| class | images | recall |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {pooled['support'][name]} | {fmt(pooled['recall'][name])} |" for name in classes]
    lines += ["", "![pooled out-of-fold confusion matrix](confusion_matrix_pooled.png)"]
    point = summary["operating_point"]
    if point:
        lines += [
            "",
            "## Melanoma operating point",
            "",
            f"Each fold flags {point['class']} at its own threshold, chosen on its validation fold for "
            f"{point['target_sensitivity']:.0%} sensitivity. Pooled over the test folds "
            f"({point['positives']} melanomas, {point['negatives']} others): sensitivity "
            f"{fmt(point['sensitivity'])}, specificity {fmt(point['specificity'])}.",
        ]
    lines += _external_lines(summary.get("external", {}))
    lines += _review_lines(summary.get("review"))
    if summary.get("subgroups"):
        lines += subgroup_lines(summary["subgroups"], "Out-of-fold predictions by subgroup (oof_predictions.parquet)")
    lines += [
        "",
        "Mean ± sd: over the folds' test splits (sd with K-1 in its denominator). Each fold's own "
        "report.md, bundle and learning curves are in its fold-i folder.",
        "",
    ]
    return "\n".join(lines)


def _external_lines(externals: dict) -> list[str]:
    lines = []
    for name, found in externals.items():
        lines += [
            "",
            f"## External dataset {name}",
            "",
            "Every fold's model on all of its images (never trained or tuned on), the melanoma flag at each "
            "model's own threshold.",
            "",
            "| fold | images | accuracy | balanced accuracy (95% interval) | macro AUC | melanoma AUC | "
            "melanoma sensitivity / specificity | ECE |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in found["per_fold"]:
            bounds = row["interval"]
            interval = f" ({bounds[0]:.3f} to {bounds[1]:.3f})" if bounds else ""
            lines.append(
                f"| {row['fold']} | {row['count']} | {fmt(row['accuracy'])} | {fmt(row['balanced_accuracy'])}"
                f"{interval} | {fmt(row['macro_auc'])} | {fmt(row['melanoma_auc'])} | "
                f"{fmt(row['melanoma_sensitivity'])} / {fmt(row['melanoma_specificity'])} | {fmt(row['ece'])} |"
            )
        lines.append(
            f"| mean ± sd | | {spread(found, 'accuracy')} | {spread(found, 'balanced_accuracy')} | "
            f"{spread(found, 'macro_auc')} | {spread(found, 'melanoma_auc')} | "
            f"{spread(found, 'melanoma_sensitivity')} / {spread(found, 'melanoma_specificity')} | "
            f"{spread(found, 'ece')} |"
        )
    return lines


def _review_lines(review: dict | None) -> list[str]:
    if not review:
        return []
    keys = [key for key in review if key != "per_fold"]
    lines = [
        "",
        "## Review flag",
        "",
        "Each fold's bundle: the share of each split it flags for review (any reason; `ood`: the "
        "out-of-distribution check set) and each detector's AUROC, check set against test fold.",
        "",
        "| fold | detector | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for row in review["per_fold"]:
        lines.append(f"| {row['fold']} | {row['method']} | " + " | ".join(fmt(row.get(key)) for key in keys) + " |")
    lines.append("| mean ± sd | | " + " | ".join(spread(review, key) for key in keys) + " |")
    return lines


def write_summary(folder_url: str, summary: dict, classes: list[str], title: str, notes: list[str]) -> None:
    import json

    plots.confusion_matrices(
        summary["pooled"], classes, f"{title}: out-of-fold, pooled", join(folder_url, "confusion_matrix_pooled.png")
    )
    storage.write_text(join(folder_url, "cv_metrics.json"), json.dumps(summary, indent=2))
    storage.write_text(join(folder_url, "cv_report.md"), markdown(summary, classes, title, notes))
