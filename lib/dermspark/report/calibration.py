"""Probabilities that mean what they say, and a melanoma flag set on purpose.

Temperature scaling (Guo et al., 2017): one scalar T, fitted on the validation split by
minimising the negative log-likelihood of softmax(logits / T). The models end in a softmax, so
the logits are the log-probabilities (a softmax ignores a constant per row). Dividing by T>0
keeps every row's order, so no predicted class changes.

The operating point: the largest melanoma threshold whose validation sensitivity reaches the
target, so the flag catches at least that share of validation melanomas with as few false
alarms as the target allows.
"""

import math
from typing import Any

import numpy as np

ECE_BINS = 15
_FLOOR = 1e-12  # probabilities are clipped here before their log: a 0 would be -inf


def _log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _FLOOR, 1.0))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row by row; T = 1 gives p back."""
    if not temperature > 0:
        raise ValueError(f"a temperature must be above 0, got {temperature}")
    scaled = _log(probabilities) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    rows = np.arange(len(labels))
    return float(-_log(probabilities)[rows, np.asarray(labels, dtype=np.int64)].mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises the validation NLL, searched on log T within [0.05, 20]."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("no examples to fit a temperature on")

    def loss(log_temperature: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, math.exp(log_temperature)), labels)

    found = minimize_scalar(loss, bounds=(math.log(0.05), math.log(20.0)), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(found.x))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Top-label calibration: per equal-width confidence bin, its images, mean confidence and
    accuracy; ECE is the bins' |accuracy - confidence| weighted by their share of images."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of 0 joins the first.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    mean_confidence: np.ndarray = np.bincount(which, weights=confidence, minlength=bins)
    hits = np.bincount(which, weights=right, minlength=bins)
    filled = counts > 0
    mean_confidence[filled] /= counts[filled]
    accuracy = np.zeros(bins)
    accuracy[filled] = hits[filled] / counts[filled]
    ece = float(np.sum(counts[filled] * np.abs(accuracy[filled] - mean_confidence[filled])) / labels.size)
    return {
        "ece": ece,
        "bins": bins,
        "count": counts.tolist(),
        "confidence": mean_confidence.round(6).tolist(),
        "accuracy": accuracy.round(6).tolist(),
    }


def choose_threshold(scores: np.ndarray, positive: np.ndarray, target: float) -> float | None:
    """The largest threshold t with sensitivity (share of positives scoring >= t) >= target;
    None without a positive."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"a target sensitivity must be within (0, 1], got {target}")
    found = np.sort(np.asarray(scores, dtype=np.float64)[np.asarray(positive, dtype=bool)])[::-1]
    if found.size == 0:
        return None
    # The k-th highest positive score keeps exactly the k highest at or above it (ties more).
    needed = math.ceil(target * found.size - 1e-9)
    return float(found[needed - 1])


def sensitivity_specificity(scores: np.ndarray, positive: np.ndarray, threshold: float) -> dict:
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    flagged = scores >= threshold
    return {
        "sensitivity": float(flagged[positive].mean()) if positive.any() else None,
        "specificity": float((~flagged[~positive]).mean()) if (~positive).any() else None,
        "positives": int(positive.sum()),
        "negatives": int((~positive).sum()),
    }


def rate_intervals(
    scores: np.ndarray, positive: np.ndarray, threshold: float, groups: np.ndarray, level: float = 0.95
) -> dict:
    """Percentile intervals of sensitivity and specificity over resamples of the lesions."""
    from dermspark.report.metrics import group_resamples, percentiles

    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    sensitivity, specificity = [], []
    for index in group_resamples(groups):
        rates = sensitivity_specificity(scores[index], positive[index], threshold)
        if rates["sensitivity"] is not None:
            sensitivity.append(rates["sensitivity"])
        if rates["specificity"] is not None:
            specificity.append(rates["specificity"])
    return {
        "level": level,
        "sensitivity": percentiles(sensitivity, level) if sensitivity else None,
        "specificity": percentiles(specificity, level) if specificity else None,
    }


def choose_temperature(validation, mode: str) -> dict:
    """The temperature scoring applies: fitted on validation by log loss; with mode "auto", kept
    only if it does not raise validation's expected calibration error (a model trained with
    label smoothing can come out calibrated already, and the fit then overshoots); "none": 1."""
    fitted = fit_temperature(validation[0], validation[1]) if validation is not None else 1.0
    chosen = {"mode": mode, "fitted_temperature": fitted, "temperature": fitted, "chosen": "temperature"}
    if mode == "none" or validation is None:
        return {**chosen, "temperature": 1.0, "chosen": "none"}
    before = reliability(validation[0], validation[1])["ece"]
    after = reliability(apply_temperature(validation[0], fitted), validation[1])["ece"]
    if after > before:
        note = f"the fitted temperature {fitted:.3f} raised the validation split's ECE from {before:.4f} to {after:.4f}"
        if mode == "auto":
            return {
                **chosen,
                "temperature": 1.0,
                "chosen": "none",
                "note": note + ": --calibration auto kept the model's own probabilities",
            }
        return {**chosen, "note": note + ", and --calibration temperature applies it all the same"}
    return chosen


def calibrate(validation, test, melanoma: int | None, target: float, mode: str = "auto") -> dict:
    """validation and test: (probabilities, labels, lesions), validation possibly None. Returns
    the temperature (choose_temperature), each split's reliability before and after, and for a
    model with a melanoma class, the operating point: a threshold chosen on validation for raw
    and for calibrated probabilities, and its rates on test with intervals."""
    from sklearn.metrics import roc_curve

    chosen = choose_temperature(validation, mode)
    temperature = chosen["temperature"]
    splits = {"validation": validation, "test": test}
    result: dict[str, Any] = {
        **chosen,
        "fitted_on": "validation" if validation is not None else None,
        "ece_bins": ECE_BINS,
        "reliability": {},
    }
    for name, split in splits.items():
        if split is not None:
            result["reliability"][name] = {
                "before": reliability(split[0], split[1]),
                "after": reliability(apply_temperature(split[0], temperature), split[1]),
            }
    if melanoma is None or validation is None:
        result["operating_point"] = None
        return result
    point: dict[str, Any] = {"class_index": melanoma, "target_sensitivity": target, "threshold": {}}
    for mode, scale in (("temperature", temperature), ("none", 1.0)):
        scores = apply_temperature(validation[0], scale)[:, melanoma]
        point["threshold"][mode] = choose_threshold(scores, validation[1] == melanoma, target)
    threshold = point["threshold"]["temperature"]
    if threshold is not None:
        for name, split in splits.items():
            scores = apply_temperature(split[0], temperature)[:, melanoma]
            positive = split[1] == melanoma
            point[name] = sensitivity_specificity(scores, positive, threshold)
        # scores and positive are the test split's, the loop's last.
        point["test"]["interval"] = rate_intervals(scores, positive, threshold, test[2])
        if positive.any() and (~positive).any():
            fpr, tpr, _ = roc_curve(positive, scores)
            point["roc"] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
    result["operating_point"] = point
    return result
