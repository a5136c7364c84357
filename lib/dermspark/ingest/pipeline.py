"""The ingest job: archive -> match and split -> decode, resize and write on executors -> Petastorm.

Everything is written under a hidden staging folder beside the output and moved into place only
when complete, so a killed job leaves no half dataset and a rerun gives the same rows and split.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

import dermspark
from dermspark import DermsparkError, storage
from dermspark.cluster import check_cluster, check_reachable
from dermspark.commit import mark, prepare_output, staged_output
from dermspark.images import DecodeOptions, parse_sizes
from dermspark.ingest import accounting, sources, split
from dermspark.ingest.decode_task import DecodeTask
from dermspark.ingest.dicom_source import read_dicom
from dermspark.ingest.folders import read_folders
from dermspark.ingest.isic2019 import read_isic2019
from dermspark.ingest.labels_csv import read_labels_csv
from dermspark.labels import class_list, label_mapping
from dermspark.manifests import DatasetManifest
from dermspark.report.distributions import write_distributions
from dermspark.results import IngestResult
from dermspark.runtime import stage
from dermspark.schema import dataset_dirname, make_schema
from dermspark.settings.ingest import IngestSettings
from dermspark.settings_core import require, to_json
from dermspark.storage import join, to_url

log = logging.getLogger(__name__)

READERS = {
    "ham10000": sources.read_ham10000,
    "isic2019": read_isic2019,
    "folders": read_folders,
    "labels_csv": read_labels_csv,
    "dicom": read_dicom,
}


def _decode_and_write(
    spark, files: list[pd.DataFrame], parsed: "Parsed", urls: list[str], schemas: list, settings: IngestSettings
) -> pd.DataFrame:
    """Runs the decode once, one task per output file: every image goes into its datasets, and
    each candidate's outcome (no image) comes back to the driver, in the same job, for the
    rejects, the counts and the report: the planned rows with `reason` and `detail`.

    The planned rows go to the tasks as they are, pickled pandas frames in an RDD, not through a
    DataFrame: Spark SQL converted them to Arrow and JVM rows, shuffled them into files and
    converted the outcomes back, which cost the JVM 1.3 of its 3.1 CPU s in a 40,060-image run
    on 2 cores. An RDD of driver data keeps them, so a task lost with its executor gets them
    again."""
    from dermspark.ingest.parts import HIDDEN_PREFIX, write_empty

    # A few hundred small images a batch or a few dozen large ones: a batch's encoded images
    # wait in memory until it is written, and from remote stores it holds its files' bytes.
    sizes = parsed.sizes
    pixels = sum(height * width for height, width in sizes)
    batch_rows = max(16, min(512, 2_000_000 // pixels))
    task = DecodeTask(
        sizes,
        parsed.options,
        parsed.classes,
        urls,
        schemas,
        settings.row_group_size_mb << 20,
        batch_rows,
        None if settings.links == "follow" else storage.local_path(to_url(settings.input)),
    )
    returned = pd.concat(
        spark.sparkContext.parallelize(files, len(files)).mapPartitions(task).collect(), ignore_index=True
    )
    # collect() keeps the partitions' order and each task its file's, so the outcomes line up
    # with the planned files row by row: checked, then set beside them without a join, which
    # is the driver's time growing with the archive.
    planned = pd.concat(files, ignore_index=True)
    if len(returned) != len(planned) or not np.array_equal(
        returned["image_id"].to_numpy(), planned["image_id"].to_numpy()
    ):
        raise RuntimeError(
            f"{len(planned)} images were planned but the decode returned {len(returned)} "
            "outcomes, not one each in the planned order; this is a dermspark bug, please "
            "report it"
        )
    planned["reason"], planned["detail"] = returned["reason"].to_numpy(), returned["detail"].to_numpy()
    for url, schema in zip(urls, schemas, strict=True):
        for name in storage.glob(url, HIDDEN_PREFIX + "*"):  # parts of killed task attempts
            storage.delete(join(url, name))
        if not storage.glob(url, "part-*"):
            write_empty(url, schema)
    return planned


def plan_files(candidates: pd.DataFrame, num_files: int) -> list[pd.DataFrame]:
    """The planned rows cut into one frame per output file, by a hash of the image id and sorted
    by it within: each file holds the same images on every rerun. Only the columns the datasets
    keep, and the path each task reads; no image bytes."""
    columns = [*accounting.CANDIDATE_COLUMNS, "split", "fold", "age_imputed"]
    ids = candidates["image_id"].to_numpy()
    file_of = pd.util.hash_pandas_object(candidates["image_id"], index=False).to_numpy() % num_files
    # Sorted as fixed-width text, compared in C: as objects every comparison is a Python call.
    # The same order but for ids ending in NUL characters, which numpy
    # drops and no file name holds. Then by file, keeping that order: one take of the rows,
    # each file a slice of it, not a mask or a copy per file.
    by_id = np.argsort(ids.astype(str), kind="stable")
    rows = by_id[np.argsort(file_of[by_id], kind="stable")]
    frame = candidates.iloc[rows, [candidates.columns.get_loc(name) for name in columns]]
    bounds = np.searchsorted(file_of[rows], np.arange(num_files + 1))
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        part = frame.iloc[start:stop]
        part.index = pd.RangeIndex(stop - start)  # a view of the rows, renumbered, not copied
        parts.append(part)
    return parts


def _finish_datasets(urls: list[str], schemas: list, written: int) -> None:
    """The decode tasks wrote the parts where they run; every image counted as written must be
    in them as the driver reads them, or the dataset would silently lack it. Then Petastorm's
    metadata, from the same footers."""
    from dermspark.ingest.parts import read_footers, write_metadata

    for url, schema in zip(urls, schemas, strict=True):
        footers = read_footers(url)
        found = sum(rows for rows, _ in footers.values())
        if found != written:
            raise DermsparkError(
                f"{written} images were decoded but the driver finds {found} in {url}: the executors wrote "
                "their parts where the driver cannot read them. Give --output on storage every node reaches"
            )
        write_metadata(url, schema, {name: groups for name, (_, groups) in footers.items()})


def _dicom_counts(provenance: dict, written: pd.DataFrame) -> dict:
    """Of the written images: where their labels came from and what the split grouped them by."""

    def counted(series: pd.Series) -> dict:
        return {str(name): int(count) for name, count in series.reindex(written["image_id"]).value_counts().items()}

    return {
        "extra_frames": provenance["extra_frames"],
        "labels_from": counted(provenance["labels_from"]),
        "grouped_by": counted(provenance["grouped_by"]),
    }


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


@dataclass(frozen=True)
class Parsed:
    """The settings that need parsing, parsed once, before anything starts."""

    sizes: list[tuple[int, int]]
    options: DecodeOptions
    ratios: tuple[float, float, float]
    classes: tuple[str, ...]

    @classmethod
    def of(cls, settings: IngestSettings) -> "Parsed":
        return cls(
            parse_sizes(settings.sizes),
            DecodeOptions(
                settings.resample,
                settings.aspect,
                settings.max_pixels,
                settings.color_constancy,
                settings.color_constancy_power,
            ),
            split.parse_ratios(split.recipe_ratios(settings.split)),
            tuple(class_list(settings.label_space)),
        )


def run_ingest(spark: SparkSession, settings: IngestSettings) -> IngestResult:
    require(settings)
    parsed = Parsed.of(settings)
    input_url, output_url = to_url(settings.input), to_url(settings.output)
    check_cluster(spark, 1, what="ingest")
    check_reachable(spark, {"--input": input_url, "--output": output_url})
    prepare_output(output_url, settings.mode, "ingest")
    archive, candidates, rejects, inputs = _read(spark, settings, input_url)
    train_mean_age = _split(candidates, parsed.ratios, settings)
    files = plan_files(candidates, settings.num_files or _auto_num_files(spark, len(candidates)))
    with staged_output(output_url, settings.mode) as staging:
        mark(staging, "ingest")
        written, rejects, urls, schemas = _write(spark, settings, parsed, files, rejects, staging)
        with stage("ingest", "accounting: rejects, counts and parts") as shown:
            by_reason = accounting.write_rejects(rejects, join(staging, "rejects.parquet"))
            counts = accounting.manifest(inputs, written, by_reason, settings.folds)
            _finish_datasets(urls, schemas, counts["written"])
            shown.update(inputs=counts["inputs"], written=counts["written"], rejected=counts["rejected"])
        failure = _over_reject_limit(counts, settings.max_reject_fraction)
        if failure:
            for url in urls:
                storage.delete(url)  # the rejects and the manifest say why there is no dataset
        manifest = _manifest(
            settings, parsed, {**counts, "failed": failure}, written, train_mean_age, archive.provenance
        )
        if not failure:
            with stage("ingest", "writing the report"):
                write_distributions(written, join(staging, "report"))
        storage.write_text(join(staging, "settings.json"), to_json(settings))
        storage.write_text(join(staging, "manifest.json"), manifest.to_json())
    if failure:
        raise DermsparkError(f"{failure}; see {join(output_url, 'rejects.parquet')} (no dataset written)")
    return IngestResult(output_url, manifest)


def _read(spark: SparkSession, settings: IngestSettings, input_url: str):
    """The archive's metadata and file list matched: (archive, candidates, rejects, inputs)."""
    with stage("ingest", f"reading the archive's metadata and file list ({settings.source})") as counts:
        archive = READERS[settings.source](spark, input_url)
        mapping = label_mapping(archive.vocabulary, settings.label_space)
        candidates, rejects, inputs = accounting.match(archive, mapping)
        counts["inputs"] = inputs
    if inputs == 0:
        raise DermsparkError(f"{input_url} is empty: no metadata rows and no image files")
    return archive, candidates, rejects, inputs


def _split(candidates: pd.DataFrame, ratios: tuple[float, float, float], settings: IngestSettings) -> float | None:
    """Split, folds and imputed ages set in place (match() made the frame for this job alone);
    returns the training split's mean age, which imputes the missing ones."""
    with stage("ingest", "splitting by lesion") as counts:
        candidates["split"] = split.lesion_splits(candidates, ratios, settings.seed)
        candidates["fold"] = split.lesion_folds(candidates, settings.folds, settings.seed) if settings.folds else None
        train_mean_age = split.training_mean_age(candidates)
        candidates["age"], candidates["age_imputed"] = split.impute_age(candidates["age"], train_mean_age)
        counts["images to decode"] = len(candidates)
    return train_mean_age


def _write(
    spark: SparkSession,
    settings: IngestSettings,
    parsed: Parsed,
    files: list[pd.DataFrame],
    rejects: pd.DataFrame,
    staging: str,
):
    """Every size's dataset written into staging: (the written rows, every reject, the datasets'
    URLs and schemas)."""
    sizes = parsed.sizes
    urls = [join(staging, dataset_dirname(*size)) for size in sizes]
    schemas = [make_schema(*size, settings.codec) for size in sizes]
    with stage(
        "ingest", f"decoding and writing {', '.join(dataset_dirname(*size) for size in sizes)} in {len(files)} files"
    ):
        outcomes = _decode_and_write(spark, files, parsed, urls, schemas, settings)
    written = outcomes[outcomes["reason"].isna()]
    decode_rejects = outcomes[outcomes["reason"].notna()].assign(origin="file")
    rejects = pd.concat([rejects, decode_rejects[list(accounting.REJECT_COLUMNS)]], ignore_index=True)
    return written, rejects, urls, schemas


def _manifest(
    settings: IngestSettings,
    parsed: Parsed,
    counts: dict,
    written: pd.DataFrame,
    train_mean_age: float | None,
    provenance: dict | None,
) -> DatasetManifest:
    """counts: accounting's, and `failed` (why no dataset was written, or None)."""
    return DatasetManifest(
        **counts,
        source=settings.source,
        label_space=settings.label_space,
        classes=list(parsed.classes),
        datasets={} if counts["failed"] else {f"{h}x{w}": dataset_dirname(h, w) for h, w in parsed.sizes},
        decode=parsed.options.recorded(),
        codec=settings.codec,
        split_ratios=dict(zip(split.SPLITS, parsed.ratios, strict=True)),
        age={"train_mean": train_mean_age, "imputed": int(written["age_imputed"].sum())},
        seed=settings.seed,
        grouped_by=split.grouping(written),
        dicom=_dicom_counts(provenance, written) if provenance else None,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dermspark_version=dermspark.__version__,
    )
