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
from pyspark.sql.types import BinaryType, IntegerType, StringType, StructField, StructType

import dermspark
from dermspark import DermsparkError
from dermspark.files import with_contents
from dermspark.images import parse_size
from dermspark.ingest import accounting, sources, split
from dermspark.labels import class_list
from dermspark.schema import dataset_dirname, make_schema
from dermspark.settings import IngestSettings, require, to_json
from dermspark.storage import HadoopFS, commit, join, prepare_output, staging_url, to_url

log = logging.getLogger(__name__)

READERS = {"ham10000": sources.read_ham10000}

DECODED_SCHEMA = StructType(
    [
        StructField("image_id", StringType()),
        StructField("lesion_id", StringType()),
        StructField("dx", StringType()),
        StructField("label", IntegerType()),
        StructField("split", StringType()),
        StructField("path", StringType()),
        StructField("image", BinaryType()),
        StructField("reason", StringType()),
        StructField("detail", StringType()),
    ]
)


def _decoder(height: int, width: int, max_pixels: int, classes: tuple[str, ...]):
    def decode(batches):
        # Runs on executors: imports here keep the closure small and picklable.
        from dermspark.images import ImageRejected, decode_image
        from dermspark.schema import make_schema

        field = make_schema(height, width).fields["image"]
        index = {name: position for position, name in enumerate(classes)}
        for batch in batches:
            images, reasons, details = [], [], []
            for content in batch["content"]:
                try:
                    array = decode_image(bytes(content or b""), height, width, max_pixels)
                    images.append(bytes(field.codec.encode(field, array)))
                    reasons.append(None)
                    details.append(None)
                except ImageRejected as rejected:
                    images.append(None)
                    reasons.append(rejected.reason)
                    details.append(rejected.detail[:300])
            yield batch.drop(columns=["content"]).assign(
                label=batch["dx"].map(index).astype("int32"),
                image=images,
                reason=reasons,
                detail=details,
            )[DECODED_SCHEMA.fieldNames()]

    return decode


def _write_dataset(spark, written: DataFrame, url: str, height: int, width: int,
                   settings: IngestSettings) -> None:
    from petastorm.etl.dataset_metadata import materialize_dataset

    schema = make_schema(height, width)
    with materialize_dataset(spark, url, schema, settings.row_group_size_mb):
        (
            written.select(*schema.fields.keys())
            # Hash partitioning and sorting make reruns write the same rows to the same files.
            .repartition(settings.num_files, "image_id")
            .sortWithinPartitions("image_id")
            .write.mode("overwrite")
            .parquet(url)
        )


def run_ingest(spark: SparkSession, settings: IngestSettings) -> dict:
    require(settings, "input", "output")
    if settings.source not in READERS:
        raise DermsparkError(f"unknown --source {settings.source!r}; known: {', '.join(READERS)}")
    try:
        height, width = parse_size(settings.size)
        ratios = split.parse_ratios(settings.split)
        classes = class_list(settings.label_space)
    except ValueError as error:
        raise DermsparkError(str(error)) from None
    input_url, output_url = to_url(settings.input), to_url(settings.output)
    fs = HadoopFS(spark)
    try:
        prepare_output(fs, output_url, settings.mode)
    except (ValueError, FileExistsError) as error:
        raise DermsparkError(str(error)) from None

    archive = READERS[settings.source](spark, input_url)
    candidates, rejects, pairs = accounting.match(archive, classes)
    inputs = accounting.count_inputs(archive, pairs)
    if inputs == 0:
        raise DermsparkError(f"{input_url} is empty: no metadata rows and no image files")
    log.info("ingest: %d inputs found in %s", inputs, input_url)

    candidates = split.assign_splits(candidates, ratios, settings.seed)
    # Image rows are large: a small Arrow batch keeps each Python worker's memory bounded.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
    decoded = (
        with_contents(spark, candidates, archive.image_folders)
        .mapInPandas(_decoder(height, width, settings.max_pixels, classes), DECODED_SCHEMA)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    written = decoded.filter(F.col("reason").isNull())
    decode_rejects = decoded.filter(F.col("reason").isNotNull()).select(
        F.lit("file").alias("origin"), "image_id", "path", "reason", "detail"
    )
    rejects = rejects.unionByName(decode_rejects)

    staging = staging_url(output_url)
    try:
        dataset_name = dataset_dirname(height, width)
        _write_dataset(spark, written, join(staging, dataset_name), height, width, settings)
        log.info("ingest: decoded and wrote %s", dataset_name)
        rejects.coalesce(1).write.parquet(join(staging, "rejects.parquet"))
        counts = accounting.manifest(inputs, written, spark.read.parquet(join(staging, "rejects.parquet")))
        result = {
            **counts,
            "source": settings.source,
            "label_space": settings.label_space,
            "classes": list(classes),
            "datasets": {settings.size: dataset_name},
            "split_ratios": dict(zip(split.SPLITS, ratios, strict=True)),
            "seed": settings.seed,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dermspark_version": dermspark.__version__,
        }
        fs.write_text(join(staging, "manifest.json"), json.dumps(result, indent=2))
        fs.write_text(join(staging, "settings.json"), to_json(settings))
        commit(fs, staging, output_url)
    except BaseException:
        if fs.exists(staging):
            fs.delete(staging)
        raise
    finally:
        decoded.unpersist()
    return {**result, "output": output_url}
