"""What a person reads after a run: confusion-matrix and learning-curve plots and a short
Markdown report, from the metrics dictionaries that `evaluate` makes (training and scoring)."""

import os

import numpy as np

from dermspark.plots import pyplot, save

# Training reports test and validation splits; scoring with --labels reports the labeled images.
SECTIONS = ("test", "validation", "labeled")


def plot_confusion_matrix(section: dict, classes: list[str], title: str, path: str) -> None:
    """Counts beside the row-normalized matrix (each row: where that class's images went)."""
    size = max(4.0, 0.7 * len(classes) + 2)
    figure, axes = pyplot().subplots(1, 2, figsize=(2 * size + 1, size))
    for axis, key, label in (
        (axes[0], "confusion_matrix", "counts"),
        (axes[1], "confusion_matrix_normalized", "share of the true class"),
    ):
        matrix = np.asarray(section[key], dtype=float)
        axis.imshow(matrix, cmap="Blues", vmin=0)
        for (row, column), value in np.ndenumerate(matrix):
            text = f"{int(value)}" if key == "confusion_matrix" else f"{value:.2f}"
            bright = value > matrix.max() / 2
            axis.text(column, row, text, ha="center", va="center", color="white" if bright else "black",
                      fontsize=8)
        axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        axis.set_yticks(range(len(classes)), classes)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(label)
    figure.suptitle(title)
    save(figure, path)


def plot_history(history: dict, path: str, stage_ends: list[int] = ()) -> None:
    """Loss, accuracy and balanced accuracy per epoch, training beside validation, and the
    learning rate each epoch ended on, with a line where a stage ends."""
    panels = [name for name in ("loss", "accuracy", "balanced_accuracy", "learning_rate") if history.get(name)]
    figure, axes = pyplot().subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, metric in zip(axes[0], panels, strict=True):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if history.get(key):
                axis.plot(range(1, len(history[key]) + 1), history[key], marker=".", label=label)
        for end in stage_ends:
            axis.axvline(end + 0.5, color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    save(figure, path)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def interval_text(section: dict) -> str:
    """' (95% interval LOW to HIGH)' of balanced accuracy, or '' for a split without one."""
    if "interval" not in section:
        return ""
    low, high = section["interval"]["balanced_accuracy"]
    return f" ({section['interval']['level']:.0%} interval {low:.3f} to {high:.3f})"


def markdown(metrics: dict, classes: list[str], title: str, notes: list[str] = ()) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")
    lines += ["| split | images | accuracy | balanced accuracy | macro AUC | majority baseline |",
              "|---|---|---|---|---|---|"]
    for name in SECTIONS:
        if name in metrics:
            section = metrics[name]
            lines.append(
                f"| {name} | {section['count']} | {_fmt(section['accuracy'])} | "
                f"{_fmt(section['balanced_accuracy'])}{interval_text(section)} | {_fmt(section['macro_auc'])} | "
                f"{_fmt(section['baseline_accuracy'])} |"
            )
    for name in SECTIONS:
        if name not in metrics:
            continue
        section = metrics[name]
        heading = "Labeled images" if name == "labeled" else f"{name.capitalize()} split"
        lines += ["", f"## {heading}, per class", "",
                  "| class | images | precision | recall | F1 | specificity | AUC |", "|---|---|---|---|---|---|---|"]
        for label in classes:
            row = section["per_class"][label]
            lines.append(
                f"| {label} | {row['support']} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | "
                f"{_fmt(row['f1'])} | {_fmt(row['specificity'])} | {_fmt(row['auc'])} |"
            )
        if "binary" in section:
            binary = section["binary"]
            lines += ["", f"{binary['positive_class']} at threshold {binary['threshold']}: sensitivity "
                      f"{_fmt(binary['sensitivity'])}, specificity {_fmt(binary['specificity'])}."]
        lines += ["", f"![{name} confusion matrix](confusion_matrix_{name}.png)"]
    if metrics.get("history"):
        lines += ["", "## Learning curves", "", "![loss and accuracy per epoch](curves.png)"]
    if any("interval" in metrics.get(name, {}) for name in SECTIONS):
        lines += ["", "Intervals: balanced accuracy's percentiles over 1,000 resamples of the split's lesions",
                  "(all of a lesion's images together), how far the figure could move on another split of",
                  "this size."]
    if "test" in metrics:
        lines += ["", "The test split shares no lesion with training and was used for nothing else: not for",
                  "early stopping, not for choosing a checkpoint."]
    lines.append("")
    return "\n".join(lines)


def write_report(folder: str, metrics: dict, classes: list[str], title: str, notes: list[str] = (),
                 stage_ends: list[int] = ()) -> list[str]:
    """Writes report.md and its PNGs into a local folder; returns the file names."""
    os.makedirs(folder, exist_ok=True)
    names = []
    for name in SECTIONS:
        if name in metrics:
            names.append(f"confusion_matrix_{name}.png")
            plot_confusion_matrix(metrics[name], classes, f"{title}: {name} split", os.path.join(folder, names[-1]))
    if metrics.get("history"):
        names.append("curves.png")
        plot_history(metrics["history"], os.path.join(folder, names[-1]), stage_ends)
    with open(os.path.join(folder, "report.md"), "w") as handle:
        handle.write(markdown(metrics, classes, title, notes))
    return [*names, "report.md"]
