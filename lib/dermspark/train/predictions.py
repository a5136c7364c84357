"""Every test image's prediction as scoring would give it, a row each: OUTPUT/test_predictions.parquet,
written by rank 0 beside the bundle. A cross-validation joins its folds' into
OUTPUT/oof_predictions.parquet, every image of the dataset once, predicted by the model that
never trained on it. Every figure of the reports can be recomputed from these, and any subgroup
measured without scoring again: each row carries its lesion, its fold and its metadata.
"""

import io

import numpy as np
import pandas as pd

from dermspark import storage
from dermspark.train.worker_config import WorkerConfig

FILE = "test_predictions.parquet"
OOF_FILE = "oof_predictions.parquet"
METADATA = ("age", "sex", "localization", "dx_type")


def _text(values: np.ndarray) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else str(value) for value in values]


def table(config: WorkerConfig, split, temperature: float, threshold: float | None, reviewer) -> pd.DataFrame:
    """split: finish.Inferred of the test split; threshold: the melanoma flag's, None without."""
    from dermspark.labels import melanoma_index
    from dermspark.report.calibration import apply_temperature

    classes = list(config.classes)
    probabilities = apply_temperature(split.raw, temperature).astype(np.float32)
    melanoma = melanoma_index(classes)
    frame = pd.DataFrame(
        {
            "image_id": _text(split.ids),
            "lesion_id": _text(split.lesions),
            "fold": (config.folds or {}).get("test", [None])[0],
            "true_label": np.asarray(classes, dtype=object)[split.labels],
            "predicted_label": np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)],
            "confidence": probabilities.max(axis=1),
            **{f"prob_{name}": probabilities[:, index] for index, name in enumerate(classes)},
            # As scoring compares it: the stored float32 against the threshold in float64.
            "melanoma_flag": (
                probabilities[:, melanoma].astype(np.float64) >= threshold
                if melanoma is not None and threshold is not None
                else None
            ),
        }
    )
    if reviewer is not None:
        scores, flags, reasons = reviewer.review(split.images, split.features, split.raw, probabilities)
        frame["ood_score"], frame["review"], frame["review_reason"] = scores.astype(np.float32), flags, reasons
    else:
        frame["ood_score"], frame["review"], frame["review_reason"] = None, None, None
    return frame.merge(_metadata(config.dataset_url, frame["image_id"]), on="image_id", how="left")


def _metadata(dataset_url: str, ids: pd.Series) -> pd.DataFrame:
    """The test images' metadata columns, read from the dataset's Parquet without its images."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    fs, path = storage.open_url(dataset_url)
    found = ds.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True)
    wanted = found.to_table(
        columns=["image_id", *METADATA], filter=ds.field("image_id").isin(pa.array(ids.tolist(), pa.string()))
    ).to_pandas()
    return wanted.drop_duplicates("image_id")


def write_predictions(
    config: WorkerConfig, split, temperature: float, threshold: float | None, reviewer
) -> pd.DataFrame:
    frame = table(config, split, temperature, threshold, reviewer)
    storage.write_parquet(pa_table(frame), storage.join(config.output_url, FILE))
    return frame


def pa_table(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def read_frame(url: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(storage.read_bytes(url)))


def join_folds(output_url: str, folds: int) -> str | None:
    """The folds' test predictions as one table, OUTPUT/oof_predictions.parquet; None when a fold
    was trained before dermspark wrote them."""
    parts = [storage.join(output_url, f"fold-{index}", FILE) for index in range(folds)]
    if not all(storage.exists(part) for part in parts):
        return None
    frame = pd.concat([read_frame(part) for part in parts], ignore_index=True)
    url = storage.join(output_url, OOF_FILE)
    storage.write_parquet(pa_table(frame), url)
    return url
