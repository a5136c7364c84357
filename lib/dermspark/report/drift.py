"""What a batch of predictions looks like, and how far it is from another: the predicted-class mix
and the confidence (top calibrated probability) histogram, compared by population stability
index and Jensen-Shannon distance. Training records its validation split's in the bundle
(`reference`); the monitor job compares every period of scoring with it.

Thresholds (docs/monitor.md): PSI of 0.1 to 0.25 is the usual "watch", 0.25 or more a shift
(Siddiqi, Credit Risk Scorecards, 2006); a Jensen-Shannon distance (base 2, 0 to 1) of 0.2 or
more is a shift too. A period of fewer than MIN_PREDICTIONS predictions is not judged: drawn from
the reference itself, a period that small already scatters (docs/monitor.md has the figures).
"""

import numpy as np

# Confidence is kept in 100 bins of 0.01 (quantiles read from them are within 0.01) and compared
# in 10 of 0.1: finer bins make a small period's PSI mostly sampling noise.
HISTOGRAM_BINS = 100
COMPARED_BINS = 10
PSI_WATCH, PSI_SHIFT, JS_SHIFT = 0.1, 0.25, 0.2
MIN_PREDICTIONS = 200
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# A bin empty on one side would make PSI infinite: every share is at least this.
_FLOOR = 1e-4


def confidence_bin(confidence: np.ndarray) -> np.ndarray:
    """The 0.01-wide bin of each confidence, 0 to 99 (1.0 in the last)."""
    return np.minimum((np.asarray(confidence, dtype=np.float64) * HISTOGRAM_BINS).astype(int), HISTOGRAM_BINS - 1)


def reference(probabilities: np.ndarray, classes, split: str) -> dict:
    """A split's predictions as the bundle records them: how many, the predicted-class mix and the
    confidence histogram."""
    predicted = probabilities.argmax(axis=1)
    counts = np.bincount(predicted, minlength=len(classes))
    histogram = np.bincount(confidence_bin(probabilities.max(axis=1)), minlength=HISTOGRAM_BINS)
    return {
        "split": split,
        "predictions": int(len(probabilities)),
        "class_counts": {name: int(count) for name, count in zip(classes, counts, strict=True)},
        "confidence_histogram": histogram.astype(int).tolist(),
    }


def coarse(histogram) -> np.ndarray:
    """A 100-bin confidence histogram in COMPARED_BINS bins."""
    return np.asarray(histogram, dtype=np.float64).reshape(COMPARED_BINS, -1).sum(axis=1)


def _shares(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    shares = counts / total if total else np.full(len(counts), 1 / len(counts))
    shares = np.maximum(shares, _FLOOR)
    return shares / shares.sum()


def psi(expected, actual) -> float:
    """Population stability index of two count (or share) vectors over the same bins."""
    e, a = _shares(expected), _shares(actual)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected, actual) -> float:
    """Jensen-Shannon distance, base 2: 0 for the same distribution, 1 for disjoint ones."""
    from scipy.spatial.distance import jensenshannon

    p, q = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if not p.sum() or not q.sum():
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def quantiles(histogram) -> dict[str, float | None]:
    """Confidence quantiles read from a 100-bin histogram (each bin's upper edge)."""
    counts = np.asarray(histogram, dtype=np.float64)
    total = counts.sum()
    if not total:
        return {f"p{round(q * 100):02d}": None for q in QUANTILES}
    cumulative = np.cumsum(counts) / total
    return {
        f"p{round(q * 100):02d}": round(float((np.searchsorted(cumulative, q) + 1) / HISTOGRAM_BINS), 2)
        for q in QUANTILES
    }


def compare(ref: dict, class_counts: dict, histogram) -> dict:
    """A period's drift from the reference: PSI and JS distance of the class mix and of the
    confidence, and whether it is judged (enough predictions) and flagged (over a threshold)."""
    classes = list(ref["class_counts"])
    expected_mix = [ref["class_counts"][name] for name in classes]
    actual_mix = [class_counts.get(name, 0) for name in classes]
    figures = {
        "psi_class_mix": psi(expected_mix, actual_mix),
        "js_class_mix": js_distance(expected_mix, actual_mix),
        "psi_confidence": psi(coarse(ref["confidence_histogram"]), coarse(histogram)),
        "js_confidence": js_distance(coarse(ref["confidence_histogram"]), coarse(histogram)),
    }
    judged = int(sum(actual_mix)) >= MIN_PREDICTIONS
    over = [name for name, value in figures.items() if value >= (PSI_SHIFT if name.startswith("psi") else JS_SHIFT)]
    watch = [name for name, value in figures.items() if name.startswith("psi") and PSI_WATCH <= value < PSI_SHIFT]
    return {
        **{name: round(value, 4) for name, value in figures.items()},
        "judged": judged,
        "flagged": judged and bool(over),
        "over": over if judged else [],
        "watch": watch if judged else [],
    }
