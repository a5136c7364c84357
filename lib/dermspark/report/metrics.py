"""Classification metrics shared by training and scoring (scikit-learn does the arithmetic).

Accuracy always stands next to balanced accuracy (mean per-class recall, the ISIC challenge
metric) and next to the majority-class baseline: on HAM10000, answering "nevus" every time is
already about 67% accurate.
"""

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)


def _auc(is_class: np.ndarray, score: np.ndarray) -> float | None:
    """One-vs-rest ROC AUC; None when the class is absent or alone (AUC is undefined)."""
    if is_class.all() or not is_class.any():
        return None
    return float(roc_auc_score(is_class, score))


def group_resamples(groups: np.ndarray, draws: int = 1000, seed: int = 0):
    """Index arrays of `draws` resamples of the groups (lesions) with replacement: every image of
    each chosen group, as many times as the group was drawn. A lesion's images stand or fall
    together, so resampling images would understate the spread."""
    _, group_of = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
    members = np.argsort(group_of, kind="stable")
    sizes = np.bincount(group_of)
    starts = np.cumsum(sizes) - sizes
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        chosen = rng.integers(0, sizes.size, sizes.size)
        yield members[np.repeat(starts[chosen], sizes[chosen]) + _ranks_within(sizes[chosen])]


def percentiles(values, level: float = 0.95) -> list[float]:
    tails = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    return np.percentile(np.asarray(values, dtype=np.float64), tails).round(4).tolist()


def bootstrap_interval(
    labels: np.ndarray, predicted: np.ndarray, groups: np.ndarray, draws: int = 1000, level: float = 0.95, seed: int = 0
) -> dict:
    """Percentile intervals of accuracy and balanced accuracy over resamples of the lesions
    (group_resamples). On HAM10000's 1,000-image test split the rarest classes have a dozen
    images, and one image moves balanced accuracy by about a point."""
    labels, predicted, groups = (np.asarray(values).reshape(-1) for values in (labels, predicted, groups))
    if not labels.size == predicted.size == groups.size:
        raise ValueError("labels, predictions and groups must have one entry per image")
    classes = int(max(labels.max(), predicted.max())) + 1
    right = labels == predicted
    accuracies, balanced = np.empty(draws), np.empty(draws)
    for draw, index in enumerate(group_resamples(groups, draws, seed)):
        accuracies[draw] = right[index].mean()
        # Mean recall over the classes present in the resample, as balanced_accuracy_score.
        support = np.bincount(labels[index], minlength=classes)
        hits = np.bincount(labels[index], weights=right[index], minlength=classes)
        balanced[draw] = np.mean(hits[support > 0] / support[support > 0])
    return {
        "level": level,
        "draws": draws,
        "groups": int(np.unique(groups).size),
        "accuracy": percentiles(accuracies, level),
        "balanced_accuracy": percentiles(balanced, level),
    }


def _ranks_within(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size - 1 for each size in turn: [2, 3] -> [0, 1, 0, 1, 2]."""
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(offsets.size) - offsets


def _balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present. An external set lacks some classes the model can
    predict; scikit-learn warns of it each time, and `balanced_accuracy_over` says it instead."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(labels, predicted))


def classification_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    majority_label: int,
    positive_class: str | None = None,
    groups: np.ndarray | None = None,
) -> dict:
    """Metrics of one split. `majority_label` is the training split's most common class.
    `positive_class` (for a binary model, e.g. melanoma) adds sensitivity and specificity at
    the threshold the prediction uses: the highest probability, which is 0.5 for two classes.
    `groups` (each image's lesion) adds 95% bootstrap intervals of accuracy and balanced accuracy."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if labels.size == 0:
        raise ValueError("no examples to evaluate")
    if probabilities.shape != (labels.size, len(classes)):
        raise ValueError(f"probabilities have shape {probabilities.shape}, expected {(labels.size, len(classes))}")
    predicted = probabilities.argmax(axis=1)
    counts = confusion_matrix(labels, predicted, labels=list(range(len(classes))))
    per_class = _per_class(labels, probabilities, predicted, counts, classes)
    defined = [figures["auc"] for figures in per_class.values() if figures["auc"] is not None]
    row_totals = counts.sum(axis=1, keepdims=True)
    result = {
        "count": int(labels.size),
        "accuracy": float(accuracy_score(labels, predicted)),
        # scikit-learn averages recall over the classes present in `labels`, as ISIC does.
        "balanced_accuracy": _balanced_accuracy(labels, predicted),
        "balanced_accuracy_over": [name for name, figures in per_class.items() if figures["support"] > 0],
        # Mean of the one-vs-rest AUCs that are defined (classes present in this split).
        "macro_auc": float(np.mean(defined)) if defined else None,
        "baseline_accuracy": float(np.mean(labels == majority_label)),
        "per_class": per_class,
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalized": np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
        .round(4)
        .tolist(),
    }
    if groups is not None:
        result["interval"] = bootstrap_interval(labels, predicted, groups)
    if positive_class is not None:
        if len(classes) != 2 or positive_class not in classes:
            raise ValueError(f"positive class {positive_class!r} needs a two-class model, got {classes}")
        figures = per_class[positive_class]
        result["binary"] = {
            "positive_class": positive_class,
            "threshold": 0.5,
            "sensitivity": figures["recall"],
            "specificity": figures["specificity"],
        }
    return result


def _per_class(
    labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray, counts: np.ndarray, classes: list[str]
) -> dict:
    """Each class's precision, recall, F1, specificity, one-vs-rest AUC and support; a figure is
    None (n/a) where it means nothing: recall and F1 of a class with no image in the split,
    precision of a class never predicted."""
    indices = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=indices, zero_division=0)
    # Specificity of class i: of the images that are not i, the share not predicted as i.
    negatives = counts.sum() - counts.sum(axis=1)
    false_positives = counts.sum(axis=0) - np.diag(counts)
    specificity = np.divide(negatives - false_positives, negatives, out=np.zeros(len(classes)), where=negatives > 0)
    predicted_counts = counts.sum(axis=0)
    return {
        name: {
            "precision": float(precision[i]) if predicted_counts[i] > 0 else None,
            "recall": float(recall[i]) if support[i] > 0 else None,
            "f1": float(f1[i]) if support[i] > 0 else None,
            "specificity": float(specificity[i]),
            "auc": _auc(labels == i, probabilities[:, i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
