"""Read an archive layout into two small tables on the driver: metadata rows and image files.

A row per image or file, no image bytes: even a million-image archive's tables are a few hundred
megabytes, and matching them in pandas costs milliseconds where Spark's small jobs cost seconds
of fixed overhead (bench/scale_bench.py). The decode, which is the work, runs on Spark.
"""

from dataclasses import dataclass

import pandas as pd
from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.files import image_id_of, list_paths
from dermspark.metadata import read_table, to_number
from dermspark.storage import join

HAM10000_METADATA = "HAM10000_metadata.csv"
HAM10000_IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "images")
HAM10000_REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")
METADATA_COLUMNS = ("image_id", "lesion_id", "dx", "age", "sex", "localization", "dx_type", "_malformed", "_row")


@dataclass
class Archive:
    # METADATA_COLUMNS: strings (None when empty), age a float (NaN when missing or not a
    # number), _malformed, and _row (file order, so that "the first row of an image id" is well
    # defined); optionally _why, a bad row's reason in words where the layout knows it better
    metadata: pd.DataFrame
    # image_id, path
    files: pd.DataFrame
    # folders holding the images
    image_folders: list[str]
    # whose diagnosis names `dx` uses: ham10000, isic2019, or "any" (class folders)
    vocabulary: str
    # DICOM: extra_frames, and per image id where its label and its group came from
    provenance: dict | None = None


def file_table(spark: SparkSession, folders: list[str]) -> pd.DataFrame:
    paths = list_paths(spark, folders)
    return pd.DataFrame({"image_id": [image_id_of(path) for path in paths], "path": paths}, dtype=object)


def column_or_none(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def require_layout(input_url: str, layout: str, files: tuple[str, ...] = ()) -> None:
    """The input is a folder holding the layout's files, or one line says which is missing."""
    if not storage.is_dir(input_url):
        raise DermsparkError(f"input folder {input_url} does not exist or is not a folder")
    for name in files:
        if not storage.exists(join(input_url, name)):
            raise DermsparkError(f"{input_url} is not {layout} archive: {name} is missing")


def read_ham10000(spark: SparkSession, input_url: str) -> Archive:
    require_layout(input_url, "a HAM10000", (HAM10000_METADATA,))
    metadata_url = join(input_url, HAM10000_METADATA)
    folders = [join(input_url, name) for name in HAM10000_IMAGE_FOLDERS]
    folders = [folder for folder in folders if storage.is_dir(folder)]
    if not folders:
        raise DermsparkError(f"{input_url} has no image folder: expected one of {', '.join(HAM10000_IMAGE_FOLDERS)}")
    table = read_table(metadata_url, HAM10000_REQUIRED_COLUMNS)
    metadata = pd.DataFrame(
        {
            "image_id": table["image_id"],
            "lesion_id": table["lesion_id"],
            "dx": table["dx"].str.lower(),
            # A non-number becomes NaN and is imputed like a missing age.
            "age": to_number(column_or_none(table, "age")),
            **{name: column_or_none(table, name) for name in ("sex", "localization", "dx_type")},
            "_malformed": table["_malformed"],
            "_row": table["_row"],
        }
    )
    return Archive(metadata=metadata, files=file_table(spark, folders), image_folders=folders, vocabulary="ham10000")
