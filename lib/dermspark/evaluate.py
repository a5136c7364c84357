"""Classification metrics shared by training and scoring (scikit-learn does the arithmetic)."""

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)


def classification_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    majority_label: int,
) -> dict:
    """Accuracy next to balanced accuracy (mean per-class recall, the ISIC challenge metric), and
    the accuracy of always answering the training split's majority class, to compare against."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("no examples to evaluate")
    predicted = np.asarray(probabilities).argmax(axis=1)
    indices = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0
    )
    return {
        "count": int(labels.size),
        "accuracy": float(accuracy_score(labels, predicted)),
        # scikit-learn averages recall over the classes present in `labels`, as ISIC does.
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "baseline_accuracy": float(np.mean(labels == majority_label)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=indices).tolist(),
    }
