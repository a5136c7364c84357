"""The scoring UDF: bundle loaded once per Python worker, Arrow batches in, probabilities out."""

from collections.abc import Iterator

import pandas as pd
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

RESULT_TYPE = StructType(
    [
        StructField("predicted_label", StringType()),
        StructField("confidence", FloatType()),
        StructField("probabilities", ArrayType(FloatType())),
        StructField("error", StringType()),
    ]
)

# One loaded bundle per Python worker process, kept across tasks (Spark reuses its workers).
_BUNDLES: dict = {}


def _bundle(path: str):
    if path not in _BUNDLES:
        from dermspark.bundle import load_bundle

        _BUNDLES[path] = load_bundle(path)
    return _BUNDLES[path]


def predict_contents(bundle, contents: pd.Series) -> pd.DataFrame:
    """Decode with the ingest decoder, predict the decodable ones in one batch, keep order."""
    import numpy as np

    from dermspark.images import ImageRejected, decode_image

    height, width = bundle.input_size
    options = bundle.decode_options
    arrays, errors = [], []
    for content in contents:
        try:
            arrays.append(decode_image(bytes(content or b""), height, width, options))
            errors.append(None)
        except ImageRejected as rejected:
            arrays.append(None)
            errors.append(rejected.reason)
    good = [index for index, array in enumerate(arrays) if array is not None]
    probabilities = [None] * len(arrays)
    if good:
        batch = np.stack([arrays[index] for index in good])
        predicted = np.asarray(bundle.model(batch, training=False), dtype=np.float32)
        for row, index in enumerate(good):
            probabilities[index] = predicted[row]
    classes = bundle.classes
    return pd.DataFrame(
        {
            "predicted_label": [None if p is None else classes[int(p.argmax())] for p in probabilities],
            "confidence": [None if p is None else float(p.max()) for p in probabilities],
            "probabilities": [None if p is None else p.tolist() for p in probabilities],
            "error": errors,
        }
    )


def make_predict_udf(bundle_path: str):
    @pandas_udf(RESULT_TYPE)
    def predict(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        bundle = _bundle(bundle_path)
        for contents in batches:
            yield predict_contents(bundle, contents)

    return predict
