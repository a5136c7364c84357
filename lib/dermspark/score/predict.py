"""Image bytes -> predictions with a loaded bundle: the one path batch scoring and serving share.

Decoding goes through `images.decode_image` with the bundle's own options (the ones its training
data was made with), so a file gets the same pixels, and so the same probabilities, in ingest,
in the batch job and in the service.
"""

import hashlib
from dataclasses import dataclass

import numpy as np

MELANOMA_CLASSES = ("mel", "melanoma")


@dataclass
class Prediction:
    sha256: str | None
    probabilities: np.ndarray | None = None
    error: str | None = None
    error_detail: str | None = None


def melanoma_index(classes: list[str]) -> int | None:
    """Where the melanoma probability is, for the flag; None for a model without that class."""
    for index, name in enumerate(classes):
        if name.lower() in MELANOMA_CLASSES:
            return index
    return None


def predict_bytes(bundle, contents: list[bytes | None]) -> list[Prediction]:
    """Decode each file, predict the decodable ones in one model call, keep the input order.
    A file that is not a usable image gets its reject reason and no probabilities."""
    from dermspark.images import ImageRejected, decode_image

    height, width = bundle.input_size
    options = bundle.decode_options
    results, arrays = [], []
    for content in contents:
        data = bytes(content or b"")
        result = Prediction(sha256=hashlib.sha256(data).hexdigest())
        try:
            arrays.append(decode_image(data, height, width, options))
        except ImageRejected as rejected:
            result.error, result.error_detail = rejected.reason, rejected.detail[:300]
        results.append(result)
    good = [result for result in results if result.error is None]
    if good:
        probabilities = np.asarray(bundle.model(np.stack(arrays), training=False), dtype=np.float32)
        for result, row in zip(good, probabilities, strict=True):
            result.probabilities = row
    return results


def describe(prediction: Prediction, classes: list[str], top_k: int, melanoma_threshold: float) -> dict:
    """The columns a prediction becomes: label, confidence, top-k and the melanoma flag."""
    probabilities = prediction.probabilities
    if probabilities is None:
        return {"predicted_label": None, "confidence": None, "probabilities": None, "top_labels": None,
                "top_probabilities": None, "melanoma_flag": None}
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    melanoma = melanoma_index(classes)
    return {
        "predicted_label": classes[int(order[0])],
        "confidence": float(probabilities[order[0]]),
        "probabilities": [float(value) for value in probabilities],
        "top_labels": [classes[int(index)] for index in order],
        "top_probabilities": [float(probabilities[index]) for index in order],
        "melanoma_flag": None if melanoma is None else bool(probabilities[melanoma] >= melanoma_threshold),
    }
