"""When not to trust a score: a review flag with a reason, fitted by training, stored in the bundle.

Reasons, checked in this order, the first that holds is given:
- `not_dermoscopy`: an image measure no training image comes near (too grey, colours unlike
  dermoscopy's): `checks` below, no model needed;
- `out_of_distribution`: the model's own features far from the training split's
  (`ood_score` above the threshold set on validation for `--review-rate`);
- `poor_quality`: too dark, overexposed, or too little detail to see a lesion;
- `uncertain`: a top probability under `--review-confidence`.

Every threshold is a quantile of the training (checks) or validation (detector) images' own
values: none is set by hand. Detectors: the Mahalanobis distance of the penultimate layer's
features to the nearest class mean, with one shared covariance (Lee et al., 2018); the energy
of the logits (Liu et al., 2020); the maximum softmax probability (Hendrycks and Gimpel, 2017).
"""

from dataclasses import dataclass

import numpy as np

from dermspark.settings.common import REVIEW_METHODS as METHODS

REASONS = ("not_dermoscopy", "out_of_distribution", "poor_quality", "uncertain")
FILE = "review.npz"
# Each check flags this share of the training split at most, on its side: five checks, 2.5%.
CHECK_TAIL = 0.005
# check -> (the image measure, the reason it gives, the side of the training values it flags)
CHECKS = {
    "grey": ("saturation", "not_dermoscopy", "low"),
    "unlike_dermoscopy_colours": ("colour_distance", "not_dermoscopy", "high"),
    "too_dark": ("brightness", "poor_quality", "low"),
    "overexposed": ("brightness", "poor_quality", "high"),
    "blurred": ("sharpness", "poor_quality", "low"),
}
MEASURES = ("saturation", "colour_distance", "brightness", "sharpness")
HISTOGRAM_BINS = (18, 8)  # hue x saturation, OpenCV's HSV


def _histogram(hsv: np.ndarray):
    import cv2

    histogram = cv2.calcHist([hsv], [0, 1], None, list(HISTOGRAM_BINS), [0, 180, 0, 256])
    return histogram / max(float(histogram.sum()), 1.0)


def image_measures(images: np.ndarray, reference: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """uint8 RGB images (n, h, w, 3), as decoded for the model -> one value per image and measure,
    and each image's hue-saturation histogram.
    colour_distance: the Bhattacharyya distance of the image's hue-saturation histogram to
    `reference` (the training split's mean histogram); NaN without one."""
    import cv2

    count = len(images)
    measures = {name: np.zeros(count, dtype=np.float64) for name in MEASURES}
    histograms = np.zeros((count, *HISTOGRAM_BINS), dtype=np.float32)
    for index, image in enumerate(np.asarray(images, dtype=np.uint8)):
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        measures["saturation"][index] = hsv[..., 1].mean() / 255.0
        measures["brightness"][index] = grey.mean() / 255.0
        measures["sharpness"][index] = cv2.Laplacian(grey, cv2.CV_64F).var()
        histograms[index] = _histogram(hsv)
    measures["colour_distance"] = (
        np.array([cv2.compareHist(reference, histogram, cv2.HISTCMP_BHATTACHARYYA) for histogram in histograms])
        if reference is not None
        else np.full(count, np.nan)
    )
    return measures, histograms


def logits(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.asarray(features, dtype=np.float64) @ kernel + bias


def energy(features, kernel, bias) -> np.ndarray:
    """-logsumexp(logits): higher for inputs less like the training images."""
    from scipy.special import logsumexp

    return -logsumexp(logits(features, kernel, bias), axis=1)


def mahalanobis(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """The squared distance to the nearest class mean under the shared covariance:
    (x - m)' P (x - m) = x'Px - 2 x'Pm + m'Pm, one product with P for every class."""
    features = np.asarray(features, dtype=np.float64)
    means, precision = np.asarray(means, dtype=np.float64), np.asarray(precision, dtype=np.float64)
    projected = features @ precision
    distances = (
        np.einsum("ij,ij->i", projected, features)[:, None]
        - 2.0 * projected @ means.T
        + np.einsum("cj,jk,ck->c", means, precision, means)[None, :]
    )
    return np.min(distances, axis=1)


def _beyond(values: np.ndarray, check: dict) -> np.ndarray:
    return values < check["threshold"] if check["side"] == "low" else values > check["threshold"]


@dataclass
class Reviewer:
    """A fitted flag: the stored arrays (review.npz) and the manifest's `review` record."""

    record: dict
    arrays: dict

    @property
    def method(self) -> str:
        return self.record["method"]

    def scores(self, method: str, features: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        if method == "mahalanobis":
            return mahalanobis(features, self.arrays["means"], self.arrays["precision"])
        if method == "energy":
            return energy(features, self.arrays["kernel"], self.arrays["bias"])
        return 1.0 - np.max(probabilities, axis=1)

    def ood_score(self, features, probabilities) -> np.ndarray:
        return self.scores(self.method, features, probabilities)

    def check_failures(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """reason -> bool per image, for the image checks."""
        measures, _ = image_measures(images, self.arrays["reference_histogram"])
        failed = {reason: np.zeros(len(images), dtype=bool) for reason in ("not_dermoscopy", "poor_quality")}
        for check in self.record["checks"].values():
            failed[check["reason"]] |= _beyond(measures[check["measure"]], check)
        return failed

    def review(self, images, features, raw, probabilities, confidence: float | None = None):
        """(ood_score, review, review_reason) per image. raw: the model's probabilities, as the
        detector was fitted on; probabilities: as returned (calibrated), for `uncertain`."""
        scores = self.ood_score(features, raw)
        failed = self.check_failures(images)
        failed["out_of_distribution"] = scores > self.record["threshold"]
        failed["uncertain"] = (
            np.max(probabilities, axis=1) < confidence if confidence is not None else np.zeros(len(scores), dtype=bool)
        )
        reasons = np.full(len(scores), None, dtype=object)
        for reason in reversed(REASONS):  # the first reason in REASONS wins
            reasons[failed[reason]] = reason
        return scores, reasons != None, reasons  # noqa: E711  elementwise on an object array

    def to_npz(self) -> bytes:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays)
        return buffer.getvalue()

    @classmethod
    def from_npz(cls, record: dict, content: bytes) -> "Reviewer":
        import io

        with np.load(io.BytesIO(content), allow_pickle=False) as stored:
            return cls(record=record, arrays={key: stored[key] for key in stored.files})


@dataclass
class Split:
    """One split as the reviewer sees it: decoded images, the model's features and probabilities
    (as Bundle.infer gives them, before any temperature) and the true classes."""

    images: np.ndarray
    features: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray


def _check_thresholds(measures: dict) -> dict:
    checks = {}
    for name, (measure, reason, side) in CHECKS.items():
        quantile = CHECK_TAIL if side == "low" else 1.0 - CHECK_TAIL
        checks[name] = {
            "measure": measure,
            "reason": reason,
            "side": side,
            "threshold": float(np.quantile(measures[measure], quantile)),
        }
    return checks


def _class_gaussian(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means and the precision of one covariance shared by all classes, shrunk by
    Ledoit-Wolf: the penultimate layer is wide (64 to 1,536) beside a few thousand images."""
    from sklearn.covariance import LedoitWolf

    features = np.asarray(features, dtype=np.float64)
    present = np.unique(labels)
    means = np.stack([features[labels == label].mean(axis=0) for label in present])
    centred = features - means[np.searchsorted(present, labels)]
    return means, LedoitWolf(assume_centered=True).fit(centred).precision_


def fit(
    method: str, rate: float, kernel: np.ndarray, bias: np.ndarray, train: Split, validation: Split | None
) -> Reviewer:
    """The checks' thresholds from the training split, every detector fitted on it, and each
    detector's threshold the (1 - rate) quantile of the validation split's scores (the
    training split's without one), so that `rate` of in-distribution images is flagged."""
    if method not in METHODS:
        raise ValueError(f"the review method must be one of {', '.join(METHODS)}, not {method!r}")
    _, histograms = image_measures(train.images)
    reference = histograms.mean(axis=0)
    measures, _ = image_measures(train.images, reference)
    means, precision = _class_gaussian(train.features, np.asarray(train.labels))
    arrays = {
        "reference_histogram": reference.astype(np.float32),
        "means": means.astype(np.float32),
        "precision": precision.astype(np.float32),
        "kernel": np.asarray(kernel, dtype=np.float32),
        "bias": np.asarray(bias, dtype=np.float32),
    }
    reviewer = Reviewer(record={"method": method, "checks": _check_thresholds(measures)}, arrays=arrays)
    held = validation if validation is not None and len(validation.labels) else train
    thresholds = {
        name: float(np.quantile(reviewer.scores(name, held.features, held.probabilities), 1.0 - rate))
        for name in METHODS
    }
    reviewer.record.update(
        {
            "review_rate": rate,
            "threshold": thresholds[method],
            "thresholds": thresholds,
            "fitted_on": {
                "train": len(train.labels),
                "threshold_on": "validation" if held is validation else "train",
                "threshold_images": len(held.labels),
            },
        }
    )
    return reviewer


def read_folder(url: str, size: tuple[int, int], options) -> np.ndarray:
    """Every decodable image below a folder (any store), decoded as the bundle decodes: the
    `--ood-check` set. Files that are not images are left out."""
    from dermspark import storage
    from dermspark.images import ImageRejected, decode_image

    fs, root = storage.open_url(storage.to_url(url))
    images = []
    for path in sorted(fs.find(root)):
        with fs.open(path, "rb") as handle:
            content = handle.read()
        try:
            images.append(decode_image(content, *size, options))
        except ImageRejected:
            continue
    if not images:
        from dermspark import DermsparkError

        raise DermsparkError(f"--ood-check {url}: no decodable image in it")
    return np.stack(images)
