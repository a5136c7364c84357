"""What scoring reads: a folder of image files, a Parquet table of paths or bytes, or a dataset
made by ingest. Each becomes rows of `path`, `image_id` and `content` (null where the worker
reads a local file itself), so the rest of the job does not care where images came from."""

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dermspark import DermsparkError, storage
from dermspark.files import (
    canonical_path_column,
    image_id_column,
    is_local,
    list_files,
    with_contents,
)
from dermspark.manifests import DatasetManifest
from dermspark.schema import dataset_dirname
from dermspark.settings.score import ScoreSettings
from dermspark.storage import join

FORMATS = ("auto", "files", "parquet", "petastorm")
# An ingested dataset's `source` -> the vocabulary its `dx` column uses.
VOCABULARIES = {"ham10000": "ham10000", "isic2019": "isic2019", "folders": "any"}


@dataclass
class ScoreInput:
    rows: DataFrame  # path, image_id, content
    read_paths: bool  # content is null: each worker reads its local files
    kind: str
    # image_id, dx and the dx vocabulary, when the input carries its own labels (ingested datasets)
    labels: DataFrame | None = None
    vocabulary: str | None = None


def detect_format(url: str) -> str:
    if not storage.is_dir(url):
        return "parquet" if url.endswith(".parquet") and storage.exists(url) else "missing"
    if (
        storage.exists(join(url, "_common_metadata"))
        or storage.exists(join(url, "manifest.json"))
        and storage.glob(url, "images_*")
    ):
        return "petastorm"
    if storage.glob(url, "*.parquet"):
        return "parquet"
    return "files"


def _files(spark, url: str, settings: ScoreSettings) -> ScoreInput:
    listing = list_files(spark, [url], settings.glob)
    if is_local([url]):
        return ScoreInput(listing.withColumn("content", F.lit(None).cast("binary")), True, "files")
    return ScoreInput(with_contents(spark, listing, [url], settings.glob), False, "files")


def _parquet(spark, url: str, settings: ScoreSettings) -> ScoreInput:
    table = spark.read.parquet(url)
    path, content = settings.path_column, settings.content_column
    for name, flag in ((path, "--path-column"), (content, "--content-column")):
        if name and name not in table.columns:
            raise DermsparkError(f"{url} has no column {name!r} ({flag}); it has {', '.join(table.columns)}")
    # A bare absolute path is a local file, as it would be on the command line.
    rows = (
        table.select(
            F.when(F.col(path).startswith("/"), F.concat(F.lit("file://"), F.col(path)))
            .otherwise(F.col(path))
            .alias("path"),
            *([F.col(content).cast("binary").alias("content")] if content else []),
        )
        .withColumn("path", canonical_path_column())
        .withColumn("image_id", image_id_column())
    )
    if content:
        return ScoreInput(rows, False, "parquet")
    if rows.filter(~F.col("path").startswith("file:")).limit(1).count() == 0:
        return ScoreInput(rows.withColumn("content", F.lit(None).cast("binary")), True, "parquet")
    # Remote paths: a binaryFile scan of their folders (small: one row per distinct folder).
    folders = [row[0] for row in rows.select(F.regexp_extract("path", r"^(.*)/[^/]*$", 1)).distinct().collect()]
    return ScoreInput(with_contents(spark, rows, folders), False, "parquet")


def _petastorm(spark, url: str, settings: ScoreSettings, input_size) -> ScoreInput:
    """An ingested dataset: its images are already decoded and resized (PNG at the dataset's
    size), so they must be the bundle's input size: resizing them again would give pixels the
    model never saw in training."""
    wanted = dataset_dirname(*input_size)
    is_root = storage.exists(join(url, "manifest.json"))
    root, dataset = (url, join(url, wanted)) if is_root else (url.rsplit("/", 1)[0], url)
    if not storage.exists(join(dataset, "_common_metadata")) or not dataset.endswith("/" + wanted):
        raise DermsparkError(
            f"{url} holds no {input_size[0]}x{input_size[1]} dataset, the size this bundle takes: "
            f"rerun ingest with --sizes {input_size[0]}x{input_size[1]}"
        )
    manifest_url = join(root, "manifest.json")
    source = DatasetManifest.from_json(storage.read_text(manifest_url)).source if storage.exists(manifest_url) else None
    table = spark.read.parquet(dataset)
    if settings.split:
        table = table.filter(F.col("split") == settings.split)
    # The dataset keeps image ids, not source paths: a row's path names the dataset and the id.
    rows = table.select(
        F.concat(F.lit(dataset + "#"), "image_id").alias("path"), "image_id", F.col("image").alias("content")
    )
    # With the metadata the subgroups need; an imputed age is not the patient's.
    metadata = [F.when(~F.col("age_imputed"), F.col("age")).alias("age"), "sex", "localization", "dx_type"]
    labels = table.select("image_id", "dx", "lesion_id", *metadata) if source in VOCABULARIES else None
    return ScoreInput(rows, False, "petastorm", labels, VOCABULARIES.get(source or ""))


def read_input(spark: SparkSession, url: str, settings: ScoreSettings, input_size) -> ScoreInput:
    if settings.input_format not in FORMATS:
        raise DermsparkError(f"--input-format must be one of {', '.join(FORMATS)}, not {settings.input_format!r}")
    kind = detect_format(url) if settings.input_format == "auto" else settings.input_format
    if kind == "missing" or not storage.exists(url):
        raise DermsparkError(f"input {url} does not exist")
    if settings.split and kind != "petastorm":
        raise DermsparkError("--split applies to datasets made by ingest only")
    if kind == "files":
        return _files(spark, url, settings)
    if kind == "parquet":
        return _parquet(spark, url, settings)
    return _petastorm(spark, url, settings, input_size)
