"""Figures of a model on images from other sources than its training data: an external dataset
after training (train --external) or an archive scored with labels (score --labels).

The same figures either way: balanced accuracy over the classes present (an external set often
holds only some of the model's classes), per-class recall, macro AUC, the melanoma AUC, the
melanoma flag's sensitivity and specificity at the bundle's own threshold (not one fitted on
these images, which a hospital could not do before scoring), and the expected calibration
error, each with a 95% interval over resamples of the lesions (of the images where no lesion
ids exist).
"""

from typing import Any

import numpy as np

from dermspark.report.calibration import rate_intervals, reliability, sensitivity_specificity
from dermspark.report.metrics import classification_metrics, group_resamples, percentiles


def auc_interval(positive: np.ndarray, scores: np.ndarray, groups: np.ndarray, level: float = 0.95) -> list | None:
    """Percentile interval of the ROC AUC over resamples of the groups; None when a class is absent."""
    from sklearn.metrics import roc_auc_score

    positive, scores = np.asarray(positive, dtype=bool), np.asarray(scores, dtype=np.float64)
    if positive.all() or not positive.any():
        return None
    values = [
        roc_auc_score(positive[index], scores[index])
        for index in group_resamples(groups)
        if positive[index].any() and not positive[index].all()
    ]
    return percentiles(values, level)


def melanoma_figures(
    probabilities: np.ndarray, labels: np.ndarray, groups: np.ndarray, melanoma: int, threshold: float | None
) -> dict:
    """The melanoma AUC and, at the bundle's threshold, the flag's rates, each with an interval."""
    from sklearn.metrics import roc_auc_score

    scores, positive = probabilities[:, melanoma], labels == melanoma
    both = bool(positive.any() and (~positive).any())
    result: dict[str, Any] = {
        "auc": float(roc_auc_score(positive, scores)) if both else None,
        "auc_interval": auc_interval(positive, scores, groups),
        "threshold": threshold,
    }
    if threshold is not None:
        result.update(sensitivity_specificity(scores, positive, threshold))
        result["interval"] = rate_intervals(scores, positive, threshold, groups)
    return result


def own_groups(groups) -> np.ndarray:
    """Each image's lesion as text; an image without one is a group of its own."""
    return np.array(
        [
            (group.decode() if isinstance(group, bytes) else str(group))
            if group not in (None, "", b"")
            else f"\0image-{index}"
            for index, group in enumerate(np.asarray(groups, dtype=object).reshape(-1))
        ],
        dtype=object,
    )


# PLR0913: the optional figures (binary, melanoma, threshold, before calibration) each switched on by one argument
def evaluate_heldout(  # noqa: PLR0913
    labels,
    probabilities,
    groups,
    classes: list[str],
    majority_label: int,
    positive_class: str | None = None,
    melanoma: int | None = None,
    threshold: float | None = None,
    uncalibrated=None,
) -> dict:
    """probabilities: as the bundle predicts them (calibrated, unless told otherwise);
    uncalibrated: the same before the temperature, for the ECE before calibration."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    groups = own_groups(groups)
    result = classification_metrics(labels, probabilities, classes, majority_label, positive_class, groups=groups)
    result["ece"] = reliability(probabilities, labels)["ece"]
    if uncalibrated is not None:
        result["ece_before"] = reliability(uncalibrated, labels)["ece"]
    if melanoma is not None:
        result["melanoma"] = {
            "class": classes[melanoma],
            **melanoma_figures(probabilities, labels, groups, melanoma, threshold),
        }
    return result
