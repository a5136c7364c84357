"""Read an archive layout into two DataFrames: metadata rows and image files."""

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dermspark import DermsparkError, storage
from dermspark.files import list_files
from dermspark.metadata import read_csv
from dermspark.storage import join

HAM10000_METADATA = "HAM10000_metadata.csv"
HAM10000_IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "images")
HAM10000_REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")


@dataclass
class Archive:
    # image_id, lesion_id, dx, age, sex, localization, dx_type, _malformed, and _row (file
    # order, so that "the first row of an image id" is well defined)
    metadata: DataFrame
    # image_id, path
    files: DataFrame
    # folders holding the images, for reading their content later
    image_folders: list[str]
    # whose diagnosis names `dx` uses: ham10000, isic2019, or "any" (class folders)
    vocabulary: str


def read_ham10000(spark: SparkSession, input_url: str) -> Archive:
    if not storage.is_dir(input_url):
        raise DermsparkError(f"input folder {input_url} does not exist or is not a folder")
    metadata_url = join(input_url, HAM10000_METADATA)
    if not storage.exists(metadata_url):
        raise DermsparkError(
            f"{input_url} is not a HAM10000 archive: {HAM10000_METADATA} is missing"
        )
    folders = [join(input_url, name) for name in HAM10000_IMAGE_FOLDERS]
    folders = [folder for folder in folders if storage.is_dir(folder)]
    if not folders:
        raise DermsparkError(
            f"{input_url} has no image folder: expected one of {', '.join(HAM10000_IMAGE_FOLDERS)}"
        )

    metadata = read_csv(spark, metadata_url, HAM10000_REQUIRED_COLUMNS)
    columns = metadata.columns

    def optional(name: str):
        column = F.nullif(F.trim(name), F.lit("")) if name in columns else F.lit(None)
        return column.cast("string").alias(name)

    metadata = metadata.select(
        F.trim("image_id").alias("image_id"),
        F.trim("lesion_id").alias("lesion_id"),
        F.lower(F.trim("dx")).alias("dx"),
        # A non-number becomes null and is imputed like a missing age.
        (F.trim("age").cast("double") if "age" in columns else F.lit(None).cast("double")).alias("age"),
        optional("sex"),
        optional("localization"),
        optional("dx_type"),
        "_malformed",
        F.monotonically_increasing_id().alias("_row"),
    )
    return Archive(metadata=metadata, files=list_files(spark, folders), image_folders=folders,
                   vocabulary="ham10000")
