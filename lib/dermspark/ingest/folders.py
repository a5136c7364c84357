"""Class folders: <input>/<class>/**/<image>, the layout the Hitta thesis made with split-folders.

split-folders' own output, <input>/{train,val,test}/<class>/, is read too; its split is
discarded because it was drawn per image. Folders carry no lesion ids, so each image is its own
group. Each file is one input; its folder names its class in the chosen label space (names are
lowercased, with '-' and ' ' read as '_'); a file outside any class folder is unknown_label.
"""

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from dermspark import DermsparkError, storage
from dermspark.files import canonical_path, list_files
from dermspark.ingest.sources import Archive

SPLIT_FOLDERS = ("train", "val", "validation", "test")


def read_folders(spark: SparkSession, input_url: str) -> Archive:
    if not storage.is_dir(input_url):
        raise DermsparkError(f"input folder {input_url} does not exist or is not a folder")
    files = list_files(spark, [input_url])
    prefix = canonical_path(input_url).rstrip("/") + "/"
    parts = F.split(F.expr(f"substring(path, {len(prefix) + 1})"), "/")
    nested = F.lower(parts[0]).isin(*SPLIT_FOLDERS) & (F.size(parts) > 2)
    folder = F.when(F.size(parts) < 2, F.lit("")).when(nested, parts[1]).otherwise(parts[0])
    normalised = F.regexp_replace(F.lower(F.trim(folder)), r"[- ]", "_")
    # Sorted by path, so "the first file of an image id" is well defined; the ids increase in
    # sort order across partitions, without a global window pulling every row into one.
    metadata = files.orderBy("path").select(
        "image_id",
        F.lit(None).cast("string").alias("lesion_id"),
        normalised.alias("dx"),
        *[F.lit(None).cast(kind).alias(name) for name, kind in
          (("age", "double"), ("sex", "string"), ("localization", "string"), ("dx_type", "string"))],
        F.lit(False).alias("_malformed"),
        F.monotonically_increasing_id().alias("_row"),
    )
    return Archive(metadata=metadata, files=files, image_folders=[input_url], vocabulary="any")
