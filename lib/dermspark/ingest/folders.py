"""Class folders: <input>/<class>/**/<image>, the layout the Hitta thesis made with split-folders.

split-folders' own output, <input>/{train,val,test}/<class>/, is read too; its split is
discarded because it was drawn per image. Folders carry no lesion ids, so each image is its own
group. Each file is one input; its folder names its class in the chosen label space (names are
lowercased, with '-' and ' ' read as '_'); a file outside any class folder is unknown_label.
"""

import pandas as pd
from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.files import canonical_path
from dermspark.ingest.sources import METADATA_COLUMNS, Archive, file_table

SPLIT_FOLDERS = ("train", "val", "validation", "test")


def class_folder(path: str, prefix: str) -> str:
    """The class folder a file lies in, normalised; "" for a file outside any."""
    parts = path[len(prefix) :].split("/")
    if len(parts) < 2:
        return ""
    folder = parts[1] if parts[0].lower() in SPLIT_FOLDERS and len(parts) > 2 else parts[0]
    return folder.strip().lower().replace("-", "_").replace(" ", "_")


def read_folders(spark: SparkSession, input_url: str) -> Archive:
    if not storage.is_dir(input_url):
        raise DermsparkError(f"input folder {input_url} does not exist or is not a folder")
    # Sorted by path, so "the first file of an image id" is well defined.
    files = file_table(spark, [input_url]).sort_values("path", ignore_index=True)
    prefix = canonical_path(input_url).rstrip("/") + "/"
    metadata = pd.DataFrame(
        {
            "image_id": files["image_id"],
            "dx": [class_folder(path, prefix) for path in files["path"]],
            "age": float("nan"),
            "_malformed": False,
            "_row": range(len(files)),
        }
    )
    for name in ("lesion_id", "sex", "localization", "dx_type"):
        metadata[name] = None
    return Archive(metadata=metadata[list(METADATA_COLUMNS)], files=files, image_folders=[input_url], vocabulary="any")
