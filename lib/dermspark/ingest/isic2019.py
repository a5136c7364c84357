"""The ISIC 2019 training archive: one-hot ground truth, a metadata table, one image folder.

ISIC_2019_Training_GroundTruth.csv: image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK (0/1 or 0.0/1.0,
LF or CRLF). ISIC_2019_Training_Metadata.csv: image,age_approx,anatom_site_general,lesion_id,sex
(lesion_id may be empty: such an image is its own group). Images are <image>.jpg in one folder;
names may end in _downsampled, and are matched as written.
"""

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from dermspark import DermsparkError, storage
from dermspark.files import list_files
from dermspark.ingest.sources import Archive
from dermspark.labels import ISIC2019_DIAGNOSES
from dermspark.metadata import one_hot_diagnosis, read_csv
from dermspark.storage import join

GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
IMAGE_FOLDERS = ("ISIC_2019_Training_Input", "images")


def read_isic2019(spark: SparkSession, input_url: str) -> Archive:
    if not storage.is_dir(input_url):
        raise DermsparkError(f"input folder {input_url} does not exist or is not a folder")
    truth_url, metadata_url = join(input_url, GROUND_TRUTH), join(input_url, METADATA)
    for url in (truth_url, metadata_url):
        if not storage.exists(url):
            raise DermsparkError(f"{input_url} is not an ISIC 2019 archive: {url.rsplit('/', 1)[-1]} is missing")
    folders = [join(input_url, name) for name in IMAGE_FOLDERS if storage.is_dir(join(input_url, name))]
    if not folders:
        raise DermsparkError(f"{input_url} has no image folder: expected one of {', '.join(IMAGE_FOLDERS)}")

    truth = read_csv(spark, truth_url, ("image", *ISIC2019_DIAGNOSES))
    truth = truth.select(
        F.trim("image").alias("image_id"),
        one_hot_diagnosis(ISIC2019_DIAGNOSES).alias("dx"),
        "_malformed",
        F.monotonically_increasing_id().alias("_row"),
    )
    extra = read_csv(
        spark, metadata_url, ("image", "age_approx", "anatom_site_general", "lesion_id", "sex")
    ).filter(~F.col("_malformed"))
    # Extra information only: its first row per image is used; it is not an input of its own.
    extra = (
        extra.select(
            F.trim("image").alias("image_id"),
            F.nullif(F.trim("lesion_id"), F.lit("")).alias("lesion_id"),
            F.trim("age_approx").cast("double").alias("age"),
            F.nullif(F.trim("sex"), F.lit("")).alias("sex"),
            F.nullif(F.trim("anatom_site_general"), F.lit("")).alias("localization"),
        )
        .dropDuplicates(["image_id"])
    )
    metadata = truth.join(extra, "image_id", "left").select(
        "image_id", "lesion_id", "dx", "age", "sex", "localization",
        F.lit(None).cast("string").alias("dx_type"), "_malformed", "_row",
    )
    return Archive(metadata=metadata, files=list_files(spark, folders), image_folders=folders,
                   vocabulary="isic2019")
