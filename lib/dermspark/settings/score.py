"""The score job's settings."""

from dataclasses import dataclass

from dermspark import DermsparkError
from dermspark.commit import MODES
from dermspark.settings.common import (
    CALIBRATIONS,
    CONFIDENCE_HELP,
    LINKS,
    LINKS_HELP,
    THRESHOLD_HELP,
    mlflow_uri_setting,
)
from dermspark.settings_core import required, setting


@dataclass(kw_only=True)
class ScoreSettings:
    model: str = required(
        "bundle written by the train job: a folder, a URL, or a registered "
        "model (models:/NAME/VERSION, models:/NAME@ALIAS)"
    )
    input: str = required("image folder (recursive), Parquet table, or ingested dataset")
    output: str = required("predictions table and run records; grows run by run")
    input_format: str = setting(
        "auto",
        "files: a folder tree of images; parquet: a table with a path "
        "(or bytes) column; petastorm: a dataset made by ingest; auto: "
        "told apart by what the input holds",
        choices=("auto", "files", "parquet", "petastorm"),
    )
    glob: str = setting(
        "*",
        "file name filter for folders, e.g. '*.jpg'; every file that matches gets "
        "a row: a prediction or an error reason",
    )
    path_column: str = setting("path", "Parquet inputs: the column of file paths")
    content_column: str | None = setting(
        None, "Parquet inputs: a column of image bytes; default: read the files at path_column"
    )
    split: str | None = setting(None, "ingested datasets: score this split only; default: all")
    batch_size: int = setting(64, "images per Arrow batch and per model call", minimum=1)
    top_k: int = setting(3, "labels kept per image, most likely first", minimum=1)
    calibration: str = setting(
        "temperature",
        "temperature: the probabilities scaled by the bundle's "
        "temperature (fitted on validation); none: the model's own",
        choices=CALIBRATIONS,
    )
    melanoma_threshold: float | None = setting(None, THRESHOLD_HELP, minimum=0, maximum=1)
    review_confidence: float | None = setting(None, CONFIDENCE_HELP, minimum=0, maximum=1)
    explain: bool = setting(
        False,
        "also write a Grad-CAM heatmap of the predicted class per image, a PNG "
        "under the run's explanations/ named by its content hash (slower)",
    )
    incremental: bool = setting(False, "skip files whose content this model version already scored")
    links: str = setting("inside", LINKS_HELP, choices=LINKS)
    dicom_sr: str | None = setting(
        None,
        "also write one DICOM Structured Report per scored DICOM instance into this "
        "folder (TID 1500: class probabilities, predicted class, melanoma and "
        "review flags, the model), for a PACS to import",
    )
    labels: str | None = setting(None, "HAM10000 metadata or ISIC 2019 ground truth CSV: adds a metrics report")
    model_version: str | None = setting(
        None, "default: NAME/VERSION for a registered model, else the bundle's training run id and hash"
    )
    mode: str = setting(
        "error",
        "error: refuse to rescore a model version already in the output; overwrite: replace its rows",
        choices=MODES,
    )
    mlflow_uri: str | None = mlflow_uri_setting()

    def rules(self) -> None:
        if self.incremental and self.mode == "overwrite":
            raise DermsparkError("--incremental keeps earlier rows and --mode overwrite replaces them: pick one")
