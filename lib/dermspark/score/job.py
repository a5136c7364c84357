"""The scoring job: input -> (skip what this model version scored) -> the UDF -> one committed run.

Every input gets exactly one row, a prediction or an error reason, or is counted as skipped:
inputs + extra_frames = scored + errors + skipped (extra frames: a multi-frame DICOM file's rows beyond its
first), checked against what was written before the commit.
"""

import dataclasses
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dermspark import DermsparkError, storage
from dermspark.bundle import cache_key, model_version, read_manifest
from dermspark.cluster import check_cluster, check_reachable
from dermspark.commit import check_kind
from dermspark.files import tune_for_images
from dermspark.manifests import BundleManifest
from dermspark.results import ScoreResult
from dermspark.runtime import stage
from dermspark.score.dicom_sr import write_reports
from dermspark.score.ground_truth import read_label_file, true_classes
from dermspark.score.inputs import ScoreInput, read_input
from dermspark.score.output import ScoringOutput
from dermspark.score.predict import output_settings
from dermspark.score.record import read_command, summarize, write_record
from dermspark.score.udf import make_frames_udf, make_hash_udf, make_predict_udf
from dermspark.settings.score import ScoreSettings
from dermspark.settings_core import require
from dermspark.storage import join, to_url
from dermspark.tracking import registry

log = logging.getLogger(__name__)


@dataclass
class ScoreRun:
    """One scoring run as its phases share it: the settings, the pinned model, the output, the
    input, and what gives the rows their meaning."""

    settings: ScoreSettings
    input_url: str
    bundle_url: str
    tracking_uri: str | None
    registered: registry.Registered | None  # for a models:/ URI
    manifest: BundleManifest  # the bundle's
    output: ScoringOutput
    # The bundle by its whole manifest (bundle.cache_key), the temperature, the threshold...
    scored_with: dict
    source: ScoreInput
    truth: DataFrame | None = None  # the labels


def run_score(spark: SparkSession, settings: ScoreSettings) -> ScoreResult:
    require(settings)  # its limits, choices and rules
    run = _open(spark, settings)
    run.truth = _truth(spark, run)
    tune_for_images(spark)
    rows = run.source.rows
    if run.source.read_paths:
        # Rows are only paths here, cheap to shuffle: four tasks a slot, so that a slot whose
        # task ends early takes another instead of idling; workers keep their loaded bundle.
        rows = rows.repartition(4 * spark.sparkContext.defaultParallelism)
    cached = [rows.persist(StorageLevel.MEMORY_AND_DISK)]
    try:
        inputs = _count(run, cached[0])
        rows, to_score = _skip_scored(run, cached[0], inputs, cached)
        result = _score_and_commit(spark, run, rows, inputs, inputs - to_score)
    except BaseException:
        run.output.abandon()
        raise
    finally:
        for frame in cached:
            frame.unpersist()
    if settings.dicom_sr and result.predictions:
        result = _dicom_reports(spark, run, result, settings.dicom_sr)
    log.info("score: %d inputs, %d scored, %d errors, %d skipped", inputs, result.scored, result.errors, result.skipped)
    reviews = result.record["reviews"]
    log.info(
        "score: %s",
        reviews["note"]
        if "note" in reviews
        else f"{reviews['flagged']} flagged for review " + json.dumps(reviews["by_reason"], sort_keys=True),
    )
    return result


def _open(spark: SparkSession, settings: ScoreSettings) -> ScoreRun:
    """The model pinned and checked, the output claimed for this run before anything is read,
    then the input."""
    input_url, output_url = to_url(settings.input), to_url(settings.output)
    check_kind(output_url, "score")
    # A registered model is pinned here to one version, which every worker then fetches.
    bundle_url, tracking_uri, registered = registry.locate(settings.model, settings.mlflow_uri)
    manifest = read_manifest(bundle_url, tracking_uri)
    check_cluster(spark, 1, what="scoring")
    # A local bundle is read by every worker, so it is probed too.
    check_reachable(
        spark,
        {
            "--model": None if registered else bundle_url,
            "--input": input_url,
            "--output": output_url,
            "--labels": settings.labels or None,
        },
    )
    started = datetime.now(UTC)
    run_id = started.strftime("score-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    version = model_version(manifest, settings.model_version or (registered.label if registered else ""))
    output = ScoringOutput(spark, output_url, version, started.date().isoformat(), run_id)
    temperature, threshold = output_settings(manifest, settings.calibration, settings.melanoma_threshold)
    scored_with = {
        "bundle": cache_key(manifest),
        "temperature": temperature,
        "melanoma_threshold": threshold,
        "top_k": settings.top_k,
        "review_confidence": settings.review_confidence,
    }
    with output.lock():
        output.mark()
        output.repair()
        output.check(settings.mode, settings.incremental, scored_with)
    source = read_input(spark, input_url, settings, manifest.height_width)
    return ScoreRun(settings, input_url, bundle_url, tracking_uri, registered, manifest, output, scored_with, source)


def _truth(spark: SparkSession, run: ScoreRun):
    classes = run.manifest.classes
    if run.settings.labels:
        return true_classes(*read_label_file(spark, to_url(run.settings.labels)), classes)
    if run.source.labels is not None and run.source.vocabulary is not None:
        return true_classes(run.source.labels, run.source.vocabulary, classes)
    return None


def _count(run: ScoreRun, rows) -> int:
    with stage("score", f"listing the inputs ({run.source.kind})") as counts:
        inputs = counts["inputs"] = rows.count()
    if inputs == 0:
        raise DermsparkError(f"nothing to score in {run.input_url} (glob {run.settings.glob!r})")
    return inputs


def _skip_scored(run: ScoreRun, rows, inputs: int, cached: list):
    """--incremental: the rows whose content this model version has not scored, and their count."""
    if not run.settings.incremental:
        return rows, inputs
    with run.output.lock():
        done = run.output.scored_hashes()
    if done is None:
        return rows, inputs
    with stage("score", f"hashing the inputs to skip what {run.output.version} scored") as counts:
        hashes = make_hash_udf(run.source.read_paths, _root(run.source, run.input_url, run.settings.links))
        hashed = rows.withColumn("_sha", hashes("path", "content"))
        rows = hashed.join(done.withColumnRenamed("sha256", "_sha"), "_sha", "left_anti").drop("_sha")
        cached.append(rows.persist(StorageLevel.MEMORY_AND_DISK))
        to_score = rows.count()
        counts.update(skipped=inputs - to_score, new=to_score)
    return cached[-1], to_score


def _dicom_reports(spark: SparkSession, run: ScoreRun, result: ScoreResult, folder: str) -> ScoreResult:
    manifest, output = run.manifest, run.output
    with stage("score", "writing DICOM Structured Reports") as counts:
        reports = write_reports(
            spark.read.parquet(output.partition_url),
            to_url(folder),
            manifest.classes,
            (manifest.model_name, output.version),
        )
        counts.update(written=reports["written"], failed=reports["failed"])
    return dataclasses.replace(result, dicom_reports=reports)


def _root(source, input_url: str, links: str) -> str | None:
    """A folder input's local folder, out of which links are not followed (--links inside)."""
    return storage.local_path(input_url) if source.kind == "files" and links == "inside" else None


def _score_and_commit(spark: SparkSession, run: ScoreRun, rows, inputs: int, skipped: int) -> ScoreResult:
    settings, output = run.settings, run.output
    if inputs > skipped:
        _stage_rows(spark, run, rows, inputs - skipped)
    with output.lock():
        # Another run may have committed since this one started: checked again, and its rows win.
        output.repair()
        output.check(settings.mode, settings.incremental, run.scored_with, again=True)
        dropped = output.drop_landed() if settings.incremental else 0
        written = spark.read.parquet(output.staged_rows) if storage.exists(output.staged_rows) else None
        summary = summarize(run, written)
        files = 0 if written is None else written.select("path").distinct().count()
        if files + dropped != inputs - skipped:
            raise RuntimeError(
                f"{inputs - skipped} files to score but {files} written and {dropped} dropped; a dermspark bug"
            )
        # A multi-frame DICOM file has a row per frame: rows = files + extra_frames.
        summary.update(
            inputs=inputs,
            skipped=skipped + dropped,
            skipped_at_commit=dropped,
            extra_frames=summary["scored"] + summary["errors"] - files,
        )
        write_record(run, summary, written)
        output.commit(replace_version=settings.mode == "overwrite", has_rows=written is not None)
    return ScoreResult.from_record(
        summary, output.url, join(output.url, "runs", output.run_id), read_command(output.url)
    )


def _stage_rows(spark: SparkSession, run: ScoreRun, rows, count: int) -> None:
    settings, output, manifest, source = run.settings, run.output, run.manifest, run.source
    classes = manifest.classes
    # One Arrow batch is one model call; image rows are large, so keep it small.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.batch_size))
    # Each Python worker loads the bundle once, from this machine's cached copy (bundle.py).
    threads = int(spark.conf.get("spark.task.cpus", "1") or 1)
    # Heatmaps go into the run's record, which the commit moves to runs/RUN_ID.
    explanations = (
        (join(output.staged_record, "explanations"), join(output.url, "runs", output.run_id, "explanations"))
        if settings.explain
        else None
    )
    predict = make_predict_udf(
        run.bundle_url,
        settings.top_k,
        run.scored_with["melanoma_threshold"],
        source.read_paths,
        threads,
        run.tracking_uri if run.registered else None,
        run.scored_with["temperature"],
        settings.review_confidence,
        explanations,
        _root(source, to_url(settings.input), settings.links),
    )
    # A row per frame of a multi-frame DICOM file (frame 0 for anything else).
    rows = rows.withColumn("frame", F.explode(make_frames_udf(source.read_paths)("path", "content")))
    with stage("score", f"predicting {count:,} inputs with {output.version}") as counts:
        rows.select("path", "image_id", predict("path", "content", "frame").alias("r")).select(
            "path",
            # A DICOM row's image id is its SOP Instance UID, which labels and records join by.
            F.coalesce("r.sop_instance_uid", "image_id").alias("image_id"),
            "r.sha256",
            "r.predicted_label",
            "r.confidence",
            *[F.col("r.probabilities")[i].alias(f"prob_{name}") for i, name in enumerate(classes)],
            "r.top_labels",
            "r.top_probabilities",
            "r.melanoma_flag",
            "r.ood_score",
            "r.review",
            "r.review_reason",
            "r.explanation",
            "r.error",
            "r.error_detail",
            "r.frame",
            "r.study_instance_uid",
            "r.series_instance_uid",
            "r.sop_instance_uid",
            F.lit(manifest.model_name).alias("model_name"),
            F.lit(manifest.model_sha256).alias("bundle_sha256"),
            F.current_timestamp().alias("scored_at"),
        ).write.parquet(output.staged_rows)
        staged = spark.read.parquet(output.staged_rows)
        counts.update(rows=staged.count(), errors=staged.where("error is not null").count())
