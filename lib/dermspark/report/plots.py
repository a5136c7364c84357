"""Matplotlib without a display, for every PNG dermspark writes. Figures are rendered in memory
and written through the storage layer, so a report lands on any store without a local copy."""

import io
from collections.abc import Sequence

import numpy as np

from dermspark import storage


def pyplot():
    import matplotlib

    # Executors and CI machines have no display; Agg draws to files only.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, url: str) -> None:
    from threadpoolctl import threadpool_limits

    # Drawing multiplies many tiny matrices; OpenBLAS wakes its threads for them, and they spin
    # on CPU the jobs' tasks need (docs/benchmarks.md, the code's figures).
    with threadpool_limits(1, user_api="blas"):
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
    pyplot().close(figure)
    storage.write_bytes(url, buffer.getvalue())


def confusion_matrices(section: dict, classes: list[str], title: str, url: str) -> None:
    """Counts beside the row-normalized matrix (each row: where that class's images went)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.7 * len(classes) + 2)
    figure, axes = pyplot().subplots(1, 2, figsize=(2 * size + 1, size))
    for axis, key, label, form in (
        (axes[0], "confusion_matrix", "counts", "d"),
        (axes[1], "confusion_matrix_normalized", "share of the true class", ".2f"),
    ):
        matrix = np.asarray(section[key])
        display = ConfusionMatrixDisplay(matrix, display_labels=classes)
        display.plot(ax=axis, cmap="Blues", values_format=form, colorbar=False, xticks_rotation=45)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(label)
    figure.suptitle(title)
    save(figure, url)


def history(values: dict, url: str, stage_ends: Sequence[int] = ()) -> None:
    """Loss, accuracy and balanced accuracy per epoch, training beside validation, and the
    learning rate each epoch ended on, with a line where a stage ends."""
    panels = [name for name in ("loss", "accuracy", "balanced_accuracy", "learning_rate") if values.get(name)]
    figure, axes = pyplot().subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, metric in zip(axes[0], panels, strict=True):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if values.get(key):
                axis.plot(range(1, len(values[key]) + 1), values[key], marker=".", label=label)
        for end in stage_ends:
            axis.axvline(end + 0.5, color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    save(figure, url)


def bars(table: dict, title: str, url: str) -> None:
    """One bar per value and split: table is {"all": {value: n}, "train": {...}, ...}."""
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
    axis.set_title(title)
    if splits:  # an archive with no usable image has nothing to label
        axis.legend()
    save(figure, url)


def reliability(calibration: dict, url: str) -> None:
    """Accuracy against confidence per bin, before and after the temperature, one panel a split;
    the diagonal is a model whose confidence is its accuracy."""
    splits = list(calibration["reliability"])
    figure, axes = pyplot().subplots(1, len(splits), figsize=(5 * len(splits), 4.5), squeeze=False)
    for axis, split in zip(axes[0], splits, strict=True):
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        for when, marker in (("before", "o"), ("after", "s")):
            bins = calibration["reliability"][split][when]
            kept = [index for index, count in enumerate(bins["count"]) if count]
            axis.plot(
                [bins["confidence"][i] for i in kept],
                [bins["accuracy"][i] for i in kept],
                marker=marker,
                label=f"{when} (ECE {bins['ece']:.3f})",
            )
        axis.set_xlabel("confidence")
        axis.set_ylabel("accuracy")
        axis.set_title(f"{split}, temperature {calibration['temperature']:.3f}")
        axis.legend()
    save(figure, url)


def roc(point: dict, url: str) -> None:
    """The test split's ROC curve of one class, with the chosen operating point on it."""
    figure, axis = pyplot().subplots(figsize=(5, 5))
    axis.plot(point["roc"]["fpr"], point["roc"]["tpr"], label=f"{point['class']} against the rest")
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    test = point["test"]
    axis.plot(
        [1 - test["specificity"]],
        [test["sensitivity"]],
        "o",
        color="red",
        label=f"threshold {point['threshold']['temperature']:.3f}",
    )
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.set_title("test split")
    axis.legend(loc="lower right")
    save(figure, url)
