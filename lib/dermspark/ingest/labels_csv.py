"""A labels CSV beside an image folder: the shape most hospital and registry exports take.

<input>/labels.csv: one row per image, `image_id` and `dx` required; `lesion_id`, `age`, `sex`,
`localization` and `dx_type` read when present, any other column ignored. `dx` may use
HAM10000's or ISIC 2019's names, in any case (ISIC 2019's ak and scc become HAM10000's akiec).
Images are <image_id>.<any extension> in <input>/images/, searched recursively. An empty
lesion_id makes the image its own group for the split, so an export without lesion ids is split
by image (the manifest's `grouped_by` says which).
"""

import pandas as pd
from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.ingest.sources import (
    METADATA_COLUMNS,
    Archive,
    column_or_none,
    file_table,
    require_layout,
)
from dermspark.metadata import read_table, to_number
from dermspark.storage import join

LABELS_FILE = "labels.csv"
IMAGE_FOLDER = "images"
REQUIRED_COLUMNS = ("image_id", "dx")


def read_labels_csv(spark: SparkSession, input_url: str) -> Archive:
    require_layout(input_url, "a labels_csv", (LABELS_FILE,))
    labels_url, images_url = join(input_url, LABELS_FILE), join(input_url, IMAGE_FOLDER)
    if not storage.is_dir(images_url):
        raise DermsparkError(f"{input_url} is not a labels_csv archive: its {IMAGE_FOLDER}/ folder is missing")
    table = read_table(labels_url, REQUIRED_COLUMNS)
    metadata = pd.DataFrame(
        {
            "image_id": table["image_id"],
            "lesion_id": column_or_none(table, "lesion_id"),
            "dx": table["dx"].str.strip().str.lower(),
            "age": to_number(column_or_none(table, "age")),
            **{name: column_or_none(table, name) for name in ("sex", "localization", "dx_type")},
            "_malformed": table["_malformed"],
            "_row": table["_row"],
        }
    )
    # "any": a class's own name or another vocabulary's name for it (labels.label_mapping).
    return Archive(
        metadata=metadata[list(METADATA_COLUMNS)],
        files=file_table(spark, [images_url]),
        image_folders=[images_url],
        vocabulary="any",
    )
