"""report.md and its plots, from the metrics dictionaries that `report.metrics` makes, for a
training run (test and validation splits) and a scoring run with labels (the labeled images)."""

from collections.abc import Sequence

from dermspark import storage
from dermspark.report import plots
from dermspark.report.review import markdown_lines as review_lines
from dermspark.report.subgroups import markdown_lines as subgroup_lines
from dermspark.storage import join

# Training reports test and validation splits; scoring with --labels reports the labeled images.
SECTIONS = ("test", "validation", "labeled")


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def interval_text(section: dict) -> str:
    """' (95% interval LOW to HIGH)' of balanced accuracy, or '' for a split without one."""
    if "interval" not in section:
        return ""
    low, high = section["interval"]["balanced_accuracy"]
    return f" ({section['interval']['level']:.0%} interval {low:.3f} to {high:.3f})"


# C901: one optional section per figure a report may hold
def markdown(metrics: dict, classes: list[str], title: str, notes: Sequence[str] = ()) -> str:  # noqa: C901
    lines = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")
    lines += [
        "| split | images | accuracy | balanced accuracy | macro AUC | majority baseline |",
        "|---|---|---|---|---|---|",
    ]
    for name in SECTIONS:
        if name in metrics:
            section = metrics[name]
            lines.append(
                f"| {name} | {section['count']} | {fmt(section['accuracy'])} | "
                f"{fmt(section['balanced_accuracy'])}{interval_text(section)} | {fmt(section['macro_auc'])} | "
                f"{fmt(section['baseline_accuracy'])} |"
            )
    for name in SECTIONS:
        if name not in metrics:
            continue
        section = metrics[name]
        heading = "Labeled images" if name == "labeled" else f"{name.capitalize()} split"
        lines += [
            "",
            f"## {heading}, per class",
            "",
            "| class | images | precision | recall | F1 | specificity | AUC |",
            "|---|---|---|---|---|---|---|",
        ]
        for label in classes:
            row = section["per_class"][label]
            lines.append(
                f"| {label} | {row['support']} | {fmt(row['precision'])} | {fmt(row['recall'])} | "
                f"{fmt(row['f1'])} | {fmt(row['specificity'])} | {fmt(row['auc'])} |"
            )
        present = section.get("balanced_accuracy_over", classes)
        if len(present) < len(classes):
            lines += [
                "",
                f"Balanced accuracy averages the recall of the {len(present)} classes with images "
                f"here ({', '.join(present)}); n/a: a figure that no image of this split defines.",
            ]
        if "binary" in section:
            binary = section["binary"]
            lines += [
                "",
                f"{binary['positive_class']} at threshold {binary['threshold']}: sensitivity "
                f"{fmt(binary['sensitivity'])}, specificity {fmt(binary['specificity'])}.",
            ]
        lines += _heldout_lines(section)
        lines += ["", f"![{name} confusion matrix](confusion_matrix_{name}.png)"]
    lines += _external_lines(metrics.get("external", {}), classes)
    if metrics.get("history"):
        lines += ["", "## Learning curves", "", "![loss and accuracy per epoch](curves.png)"]
    lines += _calibration_lines(metrics)
    lines += review_lines(metrics.get("review"))
    if metrics.get("subgroups"):
        lines += subgroup_lines(
            metrics["subgroups"], "Test split by subgroup" if "test" in metrics else "Labeled images by subgroup"
        )
    if any("interval" in metrics.get(name, {}) for name in SECTIONS):
        lines += [
            "",
            "Intervals: balanced accuracy's percentiles over 1,000 resamples of the split's lesions",
            "(all of a lesion's images together), how far the figure could move on another split of",
            "this size.",
        ]
    if "test" in metrics:
        lines += [
            "",
            "The test split shares no lesion with training and was used for nothing else: not for",
            "early stopping, not for choosing a checkpoint.",
        ]
    lines.append("")
    return "\n".join(lines)


def _bounds(bounds) -> str:
    return f" ({bounds[0]:.3f} to {bounds[1]:.3f})" if bounds else ""


def _heldout_lines(section: dict) -> list[str]:
    """The melanoma AUC, the flag at the bundle's threshold and the ECE, where measured
    (report.external: external datasets, and scoring with labels)."""
    lines = []
    melanoma = section.get("melanoma")
    if melanoma:
        interval = melanoma.get("interval") or {}
        flag = (
            ""
            if melanoma.get("threshold") is None
            else (
                f" At the bundle's threshold {melanoma['threshold']:.4f} ({melanoma['positives']} melanomas, "
                f"{melanoma['negatives']} others): sensitivity {fmt(melanoma['sensitivity'])}"
                f"{_bounds(interval.get('sensitivity'))}, specificity {fmt(melanoma['specificity'])}"
                f"{_bounds(interval.get('specificity'))}."
            )
        )
        lines += ["", f"{melanoma['class']} AUC {fmt(melanoma['auc'])}{_bounds(melanoma['auc_interval'])}.{flag}"]
    if "ece" in section:
        before = f"{fmt(section['ece_before'])} before calibration, " if "ece_before" in section else ""
        lines += ["", f"Expected calibration error: {before}{fmt(section['ece'])} as predicted."]
    return lines


def _external_lines(externals: dict, classes: list[str]) -> list[str]:
    if not externals:
        return []
    lines = [
        "",
        "## External datasets",
        "",
        "Images from other sources, never trained, tuned or stopped on, predicted as scoring predicts them; "
        "the melanoma flag at the threshold chosen on validation. Balanced accuracy and macro AUC average "
        "the classes with images in each set.",
        "",
        "| dataset | images | classes | accuracy | balanced accuracy | macro AUC | melanoma AUC | "
        "melanoma sensitivity / specificity | ECE before / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, section in externals.items():
        melanoma = section.get("melanoma") or {}
        lines.append(
            f"| {name} | {section['count']} | {len(section['balanced_accuracy_over'])} | {fmt(section['accuracy'])} | "
            f"{fmt(section['balanced_accuracy'])}{interval_text(section)} | {fmt(section['macro_auc'])} | "
            f"{fmt(melanoma.get('auc'))}{_bounds(melanoma.get('auc_interval'))} | "
            f"{fmt(melanoma.get('sensitivity'))} / {fmt(melanoma.get('specificity'))} | "
            f"{fmt(section.get('ece_before'))} / {fmt(section.get('ece'))} |"
        )
    for name, section in externals.items():
        lines += [
            "",
            f"### {name}, per class",
            "",
            "| class | images | recall | specificity | AUC |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {label} | {row['support']} | {fmt(row['recall'])} | {fmt(row['specificity'])} | {fmt(row['auc'])} |"
            for label, row in section["per_class"].items()
            if label in classes
        ]
        lines += _heldout_lines(section)
        lines += ["", f"![{name} confusion matrix](confusion_matrix_external_{name}.png)"]
    return lines


def _calibration_lines(metrics: dict) -> list[str]:
    calibration, point = metrics.get("calibration"), metrics.get("operating_point")
    if not calibration:
        return []
    chosen = calibration.get("chosen", "temperature")
    lines = [
        "",
        "## Calibration",
        "",
        f"Temperature {calibration['temperature']:.3f}"
        + (
            f" (fitted {calibration['fitted_temperature']:.3f}; --calibration {calibration['mode']} chose {chosen})"
            if "fitted_temperature" in calibration
            else ""
        )
        + f", fitted on the {calibration['fitted_on'] or 'no'} split "
        "(scoring and serving apply it; no predicted class changes). Expected calibration error "
        f"({calibration['ece_bins']} bins):",
        "",
        "| split | before | after |",
        "|---|---|---|",
    ]
    if calibration.get("note"):
        lines[3:3] = [f"**Note:** {calibration['note']}.", ""]
    for split, found in calibration["reliability"].items():
        lines.append(f"| {split} | {fmt(found['before']['ece'])} | {fmt(found['after']['ece'])} |")
    lines += ["", "![reliability diagram](reliability.png)"]
    if point and point["threshold"].get("temperature") is not None:
        test = point["test"]
        interval = test.get("interval", {})

        def rate(key: str) -> str:
            bounds = interval.get(key)
            return fmt(test[key]) + (f" ({bounds[0]:.3f} to {bounds[1]:.3f})" if bounds else "")

        lines += [
            "",
            "## Melanoma operating point",
            "",
            f"Threshold {point['threshold']['temperature']:.4f} on the calibrated {point['class']} probability: "
            f"the largest that flags at least {point['target_sensitivity']:.0%} of the validation split's "
            f"{point['validation']['positives']} melanomas. On test ({test['positives']} melanomas, "
            f"{test['negatives']} others): sensitivity {rate('sensitivity')}, specificity {rate('specificity')}.",
            "",
            "![melanoma ROC curve](roc_melanoma.png)",
        ]
    return lines


def write_evaluation(
    folder_url: str,
    metrics: dict,
    classes: list[str],
    title: str,
    notes: Sequence[str] = (),
    stage_ends: Sequence[int] = (),
) -> list[str]:
    """Writes report.md and its PNGs under folder_url (any store); returns the file names."""
    names = []
    for name in SECTIONS:
        if name in metrics:
            names.append(f"confusion_matrix_{name}.png")
            plots.confusion_matrices(metrics[name], classes, f"{title}: {name} split", join(folder_url, names[-1]))
    for name, section in metrics.get("external", {}).items():
        names.append(f"confusion_matrix_external_{name}.png")
        plots.confusion_matrices(section, classes, f"{title}: external {name}", join(folder_url, names[-1]))
    if metrics.get("history"):
        names.append("curves.png")
        plots.history(metrics["history"], join(folder_url, names[-1]), stage_ends)
    if metrics.get("calibration"):
        names.append("reliability.png")
        plots.reliability(metrics["calibration"], join(folder_url, names[-1]))
    point = metrics.get("operating_point")
    if point and point.get("roc"):
        names.append("roc_melanoma.png")
        plots.roc(point, join(folder_url, names[-1]))
    storage.write_text(join(folder_url, "report.md"), markdown(metrics, classes, title, notes))
    return [*names, "report.md"]
