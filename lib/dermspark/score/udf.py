"""The scoring UDFs: the bundle loaded once per Python worker, Arrow batches in, predictions out.

Both take a `path` and a `content` column. With `read_paths`, content is null and each worker
reads the local file itself (Spark's binaryFile scan costs about as much per small file as a
decode); otherwise content holds the bytes, null for a zero-length file.
"""

from collections.abc import Iterator

import pandas as pd
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    FloatType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

RESULT_TYPE = StructType(
    [
        StructField("sha256", StringType()),
        StructField("predicted_label", StringType()),
        StructField("confidence", FloatType()),
        StructField("probabilities", ArrayType(FloatType())),
        StructField("top_labels", ArrayType(StringType())),
        StructField("top_probabilities", ArrayType(FloatType())),
        StructField("melanoma_flag", BooleanType()),
        StructField("ood_score", FloatType()),
        StructField("review", BooleanType()),
        StructField("review_reason", StringType()),
        StructField("explanation", StringType()),
        StructField("error", StringType()),
        StructField("error_detail", StringType()),
        # DICOM files only: the frame (one row each) and the UIDs a hospital joins results by.
        StructField("frame", IntegerType()),
        StructField("study_instance_uid", StringType()),
        StructField("series_instance_uid", StringType()),
        StructField("sop_instance_uid", StringType()),
    ]
)
DICOM_COLUMNS = {
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
}

# One loaded bundle per Python worker process, kept across tasks (Spark reuses its workers).
_BUNDLES: dict = {}


def _bundle(path: str, threads: int, tracking_uri: str | None):
    if path not in _BUNDLES:
        import tensorflow as tf

        from dermspark.bundle import load_bundle

        # A task owns spark.task.cpus cores; TensorFlow's default (every core of the machine in
        # every worker) makes the workers of one executor fight over the same cores.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # this worker's TensorFlow is already running: keep what it has

        _BUNDLES[path] = load_bundle(path, tracking_uri)
    return _BUNDLES[path]


def _contents(paths: pd.Series, contents: pd.Series, read_paths: bool, root: str | None) -> tuple[list, list]:
    """The bytes of each row and, for a file that could not be read, (reason, detail). root: the
    input folder, out of which links are not followed."""
    if not read_paths:
        return list(contents), [None] * len(contents)
    from dermspark.files import OutsideArchive, read_local

    data: list[bytes | None] = []
    failures: list[tuple[str, str | None] | None] = []
    for path in paths:
        try:
            data.append(read_local(path, root))
            failures.append(None)
        except OutsideArchive as error:
            data.append(None)
            failures.append(("outside_archive", error.strerror))
        except OSError as error:
            data.append(None)
            failures.append(("unreadable", f"cannot read the file: {error.strerror}"))
    return data, failures


def _explanations(bundle, results, folders: tuple[str, str] | None) -> list[str | None]:
    """Each decoded image's Grad-CAM over the image, a PNG named by the content's hash: the same
    file whichever task or retry writes it."""
    if folders is None:
        return [None] * len(results)
    from dermspark import storage
    from dermspark.explain import overlay_png
    from dermspark.score.predict import explain

    staged, final = folders
    names: list[str | None] = []
    for result, heatmap in zip(results, explain(bundle, results), strict=True):
        if heatmap is None:
            names.append(None)
            continue
        storage.write_bytes(storage.join(staged, f"{result.sha256}.png"), overlay_png(result.image, heatmap))
        names.append(storage.join(final, f"{result.sha256}.png"))
    return names


# PLR0913: the options the UDF closes over and ships to executors, each with its default
def make_predict_udf(  # noqa: PLR0913
    bundle_path: str,
    top_k: int = 3,
    melanoma_threshold: float = 0.5,
    read_paths: bool = False,
    threads: int = 1,
    tracking_uri: str | None = None,
    temperature: float = 1.0,
    review_confidence: float | None = None,
    explanations: tuple[str, str] | None = None,
    root: str | None = None,
):
    """tracking_uri: the MLflow server, for a bundle_path that is a registered model's artifacts;
    temperature and melanoma_threshold: as predict.output_settings resolved them on the driver;
    explanations: (the staged folder the heatmaps are written to, the folder they will be in
    once the run is committed), or None for no heatmaps; root: the input's local folder, out of
    which links are not followed."""

    @pandas_udf(RESULT_TYPE)  # type: ignore[call-overload]  # the stubs lack the type-hinted form
    def predict(batches: Iterator[tuple[pd.Series, pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from dermspark.score.predict import Prediction, describe, predict_bytes
        from dermspark.workers import steady_worker

        bundle = _bundle(bundle_path, threads, tracking_uri)
        steady_worker()  # after the model: TensorFlow's objects are the most Spark's gc would walk
        for paths, contents, frames in batches:
            data, failures = _contents(paths, contents, read_paths, root)
            readable = [index for index, failure in enumerate(failures) if failure is None]
            predicted = iter(
                predict_bytes(
                    bundle,
                    [data[index] for index in readable],
                    temperature,
                    review_confidence,
                    [int(frames.iloc[index]) for index in readable],
                )
            )
            results = [
                next(predicted) if failure is None else Prediction(None, error=failure[0], error_detail=failure[1])
                for failure in failures
            ]
            yield pd.DataFrame(
                {
                    "sha256": [result.sha256 for result in results],
                    **describe(results, bundle.classes, top_k, melanoma_threshold),
                    "explanation": _explanations(bundle, results, explanations),
                    "error": [result.error for result in results],
                    "error_detail": [result.error_detail for result in results],
                    "frame": [result.frame for result in results],
                    **{
                        column: [(result.dicom or {}).get(name) for result in results]
                        for column, name in DICOM_COLUMNS.items()
                    },
                },
                columns=RESULT_TYPE.fieldNames(),
            )

    return predict


def make_frames_udf(read_paths: bool):
    """Each file's frame numbers, [0] for anything but a multi-frame DICOM file, so that the
    scoring job gives every frame a row. Only a DICOM file's header is read for it."""

    @pandas_udf(ArrayType(IntegerType()))  # type: ignore[call-overload]  # the stubs lack the type-hinted form
    def frames(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        from dermspark.dicom import frames_of, header_frames
        from dermspark.files import local_file

        for paths, contents in batches:
            counts = [
                header_frames(local_file(path)) if read_paths else frames_of(bytes(content or b""))
                for path, content in zip(paths, contents, strict=True)
            ]
            yield pd.Series([list(range(count)) for count in counts])

    return frames


def make_hash_udf(read_paths: bool, root: str | None = None):
    """sha256 of each file's content: what --incremental compares with earlier runs' rows. A file
    that cannot be read hashes to null, so it is tried again on the next run."""

    @pandas_udf(StringType())  # type: ignore[call-overload]  # the stubs lack the type-hinted form
    def content_hash(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        import hashlib

        from dermspark.workers import steady_worker

        steady_worker()
        for paths, contents in batches:
            data, failures = _contents(paths, contents, read_paths, root)
            yield pd.Series(
                [
                    None if failure is not None else hashlib.sha256(bytes(content or b"")).hexdigest()
                    for content, failure in zip(data, failures, strict=True)
                ]
            )

    return content_hash
