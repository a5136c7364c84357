"""Image bytes -> predictions with a loaded bundle: the one path batch scoring and serving share.

Decoding goes through `images.decode_image` with the bundle's own options (the ones its training
data was made with), so a file gets the same pixels, and so the same probabilities, in ingest,
in the batch job and in the service.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from dermspark.labels import melanoma_index
from dermspark.manifests import BundleManifest


@dataclass
class Prediction:
    sha256: str | None
    probabilities: np.ndarray | None = None
    error: str | None = None
    error_detail: str | None = None
    # The review flag (dermspark.review); all None for a bundle without one.
    ood_score: float | None = None
    review: bool | None = None
    review_reason: str | None = None
    # The decoded pixels the model saw, for explanations; never written out.
    image: np.ndarray | None = None
    # A DICOM file's frame and its allowed attributes (dicom.ALLOWED: UIDs, never patient data).
    frame: int | None = None
    dicom: dict | None = None


def output_settings(manifest: BundleManifest, calibration: str, threshold: float | None) -> tuple[float, float]:
    """(temperature, melanoma threshold) that predictions use: the bundle's temperature unless
    calibration is 'none', and the threshold given, else the bundle's operating point for those
    probabilities, else 0.5. Bundles from before calibration have neither: 1.0 and 0.5."""
    manifest.views()  # a bundle this version cannot predict with stops here, before any image
    temperature = manifest.temperature(calibration)
    if threshold is None:
        chosen = manifest.threshold(calibration)
        threshold = 0.5 if chosen is None else float(chosen)
    return temperature, threshold


def predict_bytes(
    bundle,
    contents: list[bytes | None],
    temperature: float = 1.0,
    review_confidence: float | None = None,
    frames: list[int] | None = None,
) -> list[Prediction]:
    """Decode each file (a DICOM file's frame `frames[i]`, else its first), predict the decodable
    ones in one model call, keep the input order. A file that is not a usable image gets its
    reject reason and no probabilities. Probabilities are scaled by the temperature; with the
    bundle's reviewer, each gets its review flag."""
    from dermspark import dicom
    from dermspark.images import ImageRejected, decode_sizes

    height, width = bundle.input_size
    options = bundle.decode_options
    results, arrays = [], []
    for index, content in enumerate(contents):
        data = bytes(content or b"")
        result = Prediction(sha256=hashlib.sha256(data).hexdigest())
        frame = frames[index] if frames is not None else 0
        if dicom.is_dicom(data):
            result.frame, result.dicom = frame, dicom.allowed_attributes(data)
        try:
            result.image = decode_sizes(data, [(height, width)], options, frame)[0]
            arrays.append(result.image)
        except ImageRejected as rejected:
            result.error, result.error_detail = rejected.reason, rejected.detail[:300]
        results.append(result)
    good = [result for result in results if result.error is None]
    if good:
        predict_decoded(bundle, good, np.stack(arrays), temperature, review_confidence)
    return results


def predict_decoded(
    bundle, good: list[Prediction], images: np.ndarray, temperature: float, review_confidence: float | None = None
) -> None:
    """Fills each Prediction's probabilities and review flag from its decoded image."""
    probabilities, review = bundle.predict_reviewed(images, temperature, review_confidence)
    for result, row in zip(good, probabilities, strict=True):
        result.probabilities = row
    if review is None:
        return
    for result, score, flag, reason in zip(good, *review, strict=True):
        result.ood_score, result.review, result.review_reason = float(score), bool(flag), reason


def explain(bundle, predictions: list[Prediction]) -> list[np.ndarray | None]:
    """Grad-CAM heatmaps of each prediction's top class (None where a file failed)."""
    good = [
        (found.image, found.probabilities)
        for found in predictions
        if found.image is not None and found.probabilities is not None
    ]
    if not good:
        return [None] * len(predictions)
    maps = iter(bundle.explain(np.stack([image for image, _ in good]), [int(np.argmax(top)) for _, top in good]))
    return [
        next(maps) if found.image is not None and found.probabilities is not None else None for found in predictions
    ]


def describe(predictions: list[Prediction], classes: list[str], top_k: int, melanoma_threshold: float) -> dict:
    """Columns for a batch of predictions: label, confidence, every probability, the top-k labels
    and the melanoma flag (None for a model without a melanoma class); None where a file failed.
    Computed on the whole batch at once: per-row Python here cost as much as the decoding."""
    count = len(predictions)
    columns: dict[str, list[Any]] = {
        name: [None] * count
        for name in (
            "predicted_label",
            "confidence",
            "probabilities",
            "top_labels",
            "top_probabilities",
            "melanoma_flag",
        )
    }
    for name in ("ood_score", "review", "review_reason"):
        columns[name] = [getattr(prediction, name) for prediction in predictions]
    good = [(index, found.probabilities) for index, found in enumerate(predictions) if found.probabilities is not None]
    if not good:
        return columns
    matrix = np.stack([probabilities for _, probabilities in good])
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :top_k]
    top = np.take_along_axis(matrix, order, axis=1)
    names = np.asarray(classes, dtype=object)[order]
    melanoma = melanoma_index(classes)
    # The probability as the predictions table stores it (float32), compared in float64: a
    # reader checking prob_mel >= threshold must find the flag the job wrote. (A float32 array
    # against a Python float would compare in float32, rounding the threshold too.)
    flags = (
        matrix[:, melanoma].astype(np.float32).astype(np.float64) >= melanoma_threshold
        if melanoma is not None
        else [None] * len(good)
    )
    for row, (index, _) in enumerate(good):
        columns["predicted_label"][index] = names[row, 0]
        columns["confidence"][index] = float(top[row, 0])
        columns["probabilities"][index] = matrix[row]
        columns["top_labels"][index] = list(names[row])
        columns["top_probabilities"][index] = top[row]
        columns["melanoma_flag"][index] = None if flags[row] is None else bool(flags[row])
    return columns
