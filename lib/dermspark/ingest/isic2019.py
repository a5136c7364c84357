"""The ISIC 2019 training archive: one-hot ground truth, a metadata table, one image folder.

ISIC_2019_Training_GroundTruth.csv: image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK (0/1 or 0.0/1.0,
LF or CRLF). ISIC_2019_Training_Metadata.csv: image,age_approx,anatom_site_general,lesion_id,sex
(lesion_id may be empty: such an image is its own group). Images are <image>.jpg in one folder;
names may end in _downsampled, and are matched as written.
"""

import pandas as pd
from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.ingest.sources import METADATA_COLUMNS, Archive, file_table, require_layout
from dermspark.labels import ISIC2019_DIAGNOSES
from dermspark.metadata import one_hot_diagnosis, one_hot_problem, read_table, to_number
from dermspark.storage import join

GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
IMAGE_FOLDERS = ("ISIC_2019_Training_Input", "images")


def read_isic2019(spark: SparkSession, input_url: str) -> Archive:
    require_layout(input_url, "an ISIC 2019", (GROUND_TRUTH, METADATA))
    truth_url, metadata_url = join(input_url, GROUND_TRUTH), join(input_url, METADATA)
    folders = [join(input_url, name) for name in IMAGE_FOLDERS if storage.is_dir(join(input_url, name))]
    if not folders:
        raise DermsparkError(f"{input_url} has no image folder: expected one of {', '.join(IMAGE_FOLDERS)}")

    truth = read_table(truth_url, ("image", *ISIC2019_DIAGNOSES))
    truth = pd.DataFrame(
        {
            "image_id": truth["image"],
            "dx": one_hot_diagnosis(truth, ISIC2019_DIAGNOSES),
            "_why": one_hot_problem(truth, ISIC2019_DIAGNOSES),
            "_malformed": truth["_malformed"],
            "_row": truth["_row"],
        }
    )
    extra = read_table(metadata_url, ("image", "age_approx", "anatom_site_general", "lesion_id", "sex"))
    # Extra information only: its first row per image is used; it is not an input of its own.
    extra = extra[~extra["_malformed"]]
    extra = (
        pd.DataFrame(
            {
                "image_id": extra["image"],
                "lesion_id": extra["lesion_id"],
                "age": to_number(extra["age_approx"]),
                "sex": extra["sex"],
                "localization": extra["anatom_site_general"],
            }
        )
        .dropna(subset=["image_id"])
        .drop_duplicates("image_id")
    )
    metadata = truth.merge(extra, on="image_id", how="left")
    metadata["dx_type"] = None
    return Archive(
        metadata=metadata[[*METADATA_COLUMNS, "_why"]],
        files=file_table(spark, folders),
        image_folders=folders,
        vocabulary="isic2019",
    )
