"""The ingest job: archive -> match and split -> decode and resize on executors -> Petastorm.

Everything is written under a hidden staging folder beside the output and moved into place only
when complete, so a killed job leaves no half dataset and a rerun gives the same rows and split.
"""

import json
import logging
from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BinaryType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

import dermspark
from dermspark import DermsparkError
from dermspark.cluster import check_cluster
from dermspark.files import is_local, tune_for_images, with_contents
from dermspark.images import DecodeOptions, parse_sizes
from dermspark.ingest import accounting, report, sources, split
from dermspark.ingest.folders import read_folders
from dermspark.ingest.isic2019 import read_isic2019
from dermspark.labels import class_list, label_mapping
from dermspark.schema import dataset_dirname, make_schema
from dermspark.settings import IngestSettings, require, to_json
from dermspark.storage import HadoopFS, join, prepare_output, staged_output, to_url

log = logging.getLogger(__name__)

READERS = {"ham10000": sources.read_ham10000, "isic2019": read_isic2019, "folders": read_folders}

def _image_column(size: tuple[int, int]) -> str:
    return f"image_{size[0]}x{size[1]}"


def _decoded_schema(sizes: list[tuple[int, int]]) -> StructType:
    fields = [
        StructField(name, StringType())
        for name in (
            "image_id", "lesion_id", "dx", "class_name", "split", "path", "sex", "localization", "dx_type"
        )
    ]
    fields += [
        StructField("label", IntegerType()),
        StructField("age", DoubleType()),
    ]
    fields += [StructField(_image_column(size), BinaryType()) for size in sizes]
    fields += [StructField("reason", StringType()), StructField("detail", StringType())]
    return StructType(fields)


def _decoder(sizes: list[tuple[int, int]], options, classes: tuple[str, ...]):
    """Decodes rows with a `content` column or, for local archives, reads each `path` itself."""
    columns = _decoded_schema(sizes).fieldNames()

    def decode(batches):
        # Runs on executors: imports here keep the closure small and picklable.
        from dermspark.files import read_local
        from dermspark.images import ImageRejected, decode_sizes
        from dermspark.schema import make_schema

        fields = [make_schema(height, width).fields["image"] for height, width in sizes]
        index = {name: position for position, name in enumerate(classes)}

        def read(path):
            try:
                return read_local(path)
            except OSError as error:
                raise ImageRejected("unreadable", f"cannot read the file: {error.strerror}") from None

        for batch in batches:
            images = [[] for _ in sizes]
            reasons, details = [], []
            sources = batch["content"] if "content" in batch else batch["path"]
            load = (lambda content: bytes(content or b"")) if "content" in batch else read
            for source in sources:
                try:
                    arrays = decode_sizes(load(source), sizes, options)
                    for column, field, array in zip(images, fields, arrays, strict=True):
                        column.append(bytes(field.codec.encode(field, array)))
                    reasons.append(None)
                    details.append(None)
                except ImageRejected as rejected:
                    for column in images:
                        column.append(None)
                    reasons.append(rejected.reason)
                    details.append(rejected.detail[:300])
            yield batch.drop(columns=["content"], errors="ignore").assign(
                label=batch["class_name"].map(index).astype("int32"),
                reason=reasons,
                detail=details,
                **{_image_column(size): column for size, column in zip(sizes, images, strict=True)},
            )[columns]

    return decode


def _write_dataset(spark, written: DataFrame, url: str, size: tuple[int, int],
                   settings: IngestSettings) -> None:
    from petastorm.etl.dataset_metadata import materialize_dataset

    schema = make_schema(*size)
    with materialize_dataset(spark, url, schema, settings.row_group_size_mb):
        (
            written.withColumnRenamed(_image_column(size), "image")
            .select(*schema.fields.keys())
            .write.mode("overwrite")
            .parquet(url)
        )


def _auto_num_files(spark: SparkSession, images: int) -> int:
    """About 2,000 images a file (a task of a few seconds), rounded up to a multiple of the
    cluster's task slots so that no slot idles through the last round. At least 8: training
    shards row groups over its processes, and more groups balance the shards better."""
    slots = max(1, spark.sparkContext.defaultParallelism)
    wanted = max(8, -(-images // 2000))
    return -(-wanted // slots) * slots


def _over_reject_limit(counts: dict, limit: float) -> str | None:
    fraction = counts["rejected"] / counts["inputs"]
    if fraction <= limit:
        return None
    return (
        f"{counts['rejected']} of {counts['inputs']} inputs rejected ({fraction:.1%}), over "
        f"--max-reject-fraction {limit}: {counts['by_reason']}"
    )


def run_ingest(spark: SparkSession, settings: IngestSettings) -> dict:
    require(settings, "input", "output")
    if settings.source not in READERS:
        raise DermsparkError(f"unknown --source {settings.source!r}; known: {', '.join(READERS)}")
    try:
        sizes = parse_sizes(settings.sizes)
        options = DecodeOptions(settings.resample, settings.aspect, settings.max_pixels)
        ratios = split.parse_ratios(settings.split)
        classes = class_list(settings.label_space)
    except ValueError as error:
        raise DermsparkError(str(error)) from None
    input_url, output_url = to_url(settings.input), to_url(settings.output)
    check_cluster(spark, 1, what="ingest")
    fs = HadoopFS(spark)
    prepare_output(fs, output_url, settings.mode)

    archive = READERS[settings.source](spark, input_url)
    try:
        mapping = label_mapping(archive.vocabulary, settings.label_space)
    except ValueError as error:
        raise DermsparkError(str(error)) from None
    candidates, rejects, pairs = accounting.match(archive, mapping)
    inputs = accounting.count_inputs(archive, pairs)
    if inputs == 0:
        raise DermsparkError(f"{input_url} is empty: no metadata rows and no image files")
    log.info("ingest: %d inputs found in %s", inputs, input_url)

    # Small (a row per image) and read by the content join and the counts: computed once.
    candidates = split.assign_splits(candidates, ratios, settings.seed).localCheckpoint()
    tune_for_images(spark)
    # Image rows are large: an Arrow batch of a few MB keeps each Python worker's memory bounded,
    # and small images get more rows a batch, since per-batch overhead then dominates.
    pixels = sum(height * width for height, width in sizes)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(max(16, min(512, 2_000_000 // pixels))))
    num_files = settings.num_files or _auto_num_files(spark, candidates.count())
    # Partitioned and sorted by image id before decoding, while rows are small: each partition
    # becomes one Parquet file per size, the same on every rerun, with no shuffle of image bytes.
    candidates = candidates.repartition(num_files, "image_id").sortWithinPartitions("image_id")
    if not is_local(archive.image_folders):
        candidates = with_contents(spark, candidates, archive.image_folders)
    decoded = candidates.mapInPandas(_decoder(sizes, options, classes), _decoded_schema(sizes)).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    # Imputed from the training images actually written, not those decoding rejected.
    written, train_mean_age = split.impute_age(decoded.filter(F.col("reason").isNull()))
    decode_rejects = decoded.filter(F.col("reason").isNotNull()).select(
        F.lit("file").alias("origin"), "image_id", "path", "reason", "detail"
    )
    rejects = rejects.unionByName(decode_rejects)

    try:
        with staged_output(fs, output_url) as staging:
            # Rejects first: writing them decodes everything once (persisted), and a job over its
            # reject limit still leaves them for the user to read.
            rejects.coalesce(1).write.parquet(join(staging, "rejects.parquet"))
            log.info("ingest: decoded every image; rejects written")
            counts = accounting.manifest(inputs, written, spark.read.parquet(join(staging, "rejects.parquet")))
            failure = _over_reject_limit(counts, settings.max_reject_fraction)
            datasets = {}
            for size in [] if failure else sizes:
                datasets[f"{size[0]}x{size[1]}"] = dataset_dirname(*size)
                _write_dataset(spark, written, join(staging, dataset_dirname(*size)), size, settings)
                log.info("ingest: wrote %s", dataset_dirname(*size))
            result = {
                **counts,
                **({"failed": failure} if failure else {}),
                "source": settings.source,
                "label_space": settings.label_space,
                "classes": list(classes),
                "datasets": datasets,
                "decode": {"resample": options.resample, "aspect": options.aspect},
                "split_ratios": dict(zip(split.SPLITS, ratios, strict=True)),
                "age": {"train_mean": train_mean_age, "imputed": written.filter("age_imputed").count()},
                "seed": settings.seed,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "dermspark_version": dermspark.__version__,
            }
            if not failure:
                report.write_report(fs, written, join(staging, "report"))
            log.info("ingest: report written")
            fs.write_text(join(staging, "manifest.json"), json.dumps(result, indent=2))
            fs.write_text(join(staging, "settings.json"), to_json(settings))
    finally:
        decoded.unpersist()
    if failure:
        raise DermsparkError(f"{failure}; see {join(output_url, 'rejects.parquet')} (no dataset written)")
    return {**result, "output": output_url}
