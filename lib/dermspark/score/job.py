"""The scoring job: input -> (skip what this model version scored) -> the UDF -> one committed run.

Every input gets exactly one row, a prediction or an error reason, or is counted as skipped:
inputs + extra_frames = scored + errors + skipped (extra frames: a multi-frame DICOM file's rows beyond its
first), checked against what was written before the commit.
"""

import dataclasses
import json
import logging
import uuid
from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from dermspark import DermsparkError, storage
from dermspark.bundle import cache_key, model_version, read_manifest
from dermspark.cluster import check_cluster, check_reachable
from dermspark.commit import check_kind
from dermspark.files import tune_for_images
from dermspark.report.evaluation import write_evaluation
from dermspark.results import ScoreResult
from dermspark.runtime import stage
from dermspark.score.dicom_sr import write_reports
from dermspark.score.evaluation import evaluate_scores
from dermspark.score.ground_truth import read_label_file, true_classes
from dermspark.score.inputs import read_input
from dermspark.score.output import ScoringOutput
from dermspark.score.predict import output_settings
from dermspark.score.udf import make_frames_udf, make_hash_udf, make_predict_udf
from dermspark.settings import ScoreSettings
from dermspark.settings_core import require, to_dict
from dermspark.storage import join, to_url
from dermspark.tracking import registry
from dermspark.tracking.server import shown

log = logging.getLogger(__name__)


def _check(settings: ScoreSettings) -> None:
    require(settings)  # its limits, choices and rules


def run_score(spark: SparkSession, settings: ScoreSettings) -> ScoreResult:
    _check(settings)
    input_url, output_url = to_url(settings.input), to_url(settings.output)
    check_kind(output_url, "score")
    # A registered model is pinned here to one version, which every worker then fetches.
    bundle_url, tracking_uri, registered = registry.locate(settings.model, settings.mlflow_uri)
    manifest = read_manifest(bundle_url, tracking_uri)
    check_cluster(spark, 1, what="scoring")
    # A local bundle is read by every worker, so it is probed too.
    check_reachable(spark, {"--model": None if registered else bundle_url, "--input": input_url,
                            "--output": output_url, "--labels": settings.labels or None})
    classes, input_size = manifest["classes"], tuple(manifest["input_size"])
    started = datetime.now(UTC)
    run_id = started.strftime("score-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    version = model_version(manifest, settings.model_version or (registered.label if registered else ""))
    output = ScoringOutput(spark, output_url, version,
                           started.date().isoformat(), run_id)
    temperature, threshold = output_settings(manifest, settings.calibration, settings.melanoma_threshold)
    # What gives the rows their meaning; the bundle by its whole manifest (bundle.cache_key).
    scored_with = {"bundle": cache_key(manifest), "temperature": temperature, "melanoma_threshold": threshold,
                   "top_k": settings.top_k, "review_confidence": settings.review_confidence}
    with output.lock():
        output.mark()
        output.repair()
        output.check(settings.mode, settings.incremental, scored_with)

    source = read_input(spark, input_url, settings, input_size)
    truth = None
    if settings.labels:
        truth = true_classes(*read_label_file(spark, to_url(settings.labels)), classes)
    elif source.labels is not None:
        truth = true_classes(source.labels, source.vocabulary, classes)
    tune_for_images(spark)
    rows = source.rows
    if source.read_paths:
        # Rows are only paths here, cheap to shuffle: four tasks a slot, so that a slot whose
        # task ends early takes another instead of idling (14.7 s against 18.3 s for 10,015
        # images on local[2]). Workers and their loaded bundle are reused across tasks.
        rows = rows.repartition(4 * spark.sparkContext.defaultParallelism)
    cached = [rows.persist(StorageLevel.MEMORY_AND_DISK)]
    rows = cached[0]
    try:
        with stage("score", f"listing the inputs ({source.kind})") as counts:
            inputs = counts["inputs"] = rows.count()
        if inputs == 0:
            raise DermsparkError(f"nothing to score in {input_url} (glob {settings.glob!r})")
        done = None
        if settings.incremental:
            with output.lock():
                done = output.scored_hashes()
        to_score = inputs
        if done is not None:
            with stage("score", f"hashing the inputs to skip what {output.version} scored") as counts:
                hashed = rows.withColumn("_sha", make_hash_udf(source.read_paths, _root(source, input_url, settings.links))(
                    "path", "content"))
                rows = hashed.join(done.withColumnRenamed("sha256", "_sha"), "_sha", "left_anti").drop("_sha")
                cached.append(rows.persist(StorageLevel.MEMORY_AND_DISK))
                to_score = rows.count()
                counts.update(skipped=inputs - to_score, new=to_score)
        result = _score_and_commit(spark, settings, output, manifest, rows, truth, inputs, inputs - to_score,
                                   source, (bundle_url, tracking_uri, registered), scored_with)
    except BaseException:
        output.abandon()
        raise
    finally:
        for frame in cached:
            frame.unpersist()
    if settings.dicom_sr and result.predictions:
        with stage("score", "writing DICOM Structured Reports") as counts:
            reports = write_reports(spark.read.parquet(output.partition_url), to_url(settings.dicom_sr),
                                    manifest["classes"], (manifest["model_name"], output.version))
            counts.update(written=reports["written"], failed=reports["failed"])
        result = dataclasses.replace(result, dicom_reports=reports)
    log.info("score: %d inputs, %d scored, %d errors, %d skipped", inputs, result.scored, result.errors,
             result.skipped)
    reviews = result.record["reviews"]
    log.info("score: %s", reviews["note"] if "note" in reviews else
             f"{reviews['flagged']} flagged for review " + json.dumps(reviews["by_reason"], sort_keys=True))
    return result


def _root(source, input_url: str, links: str) -> str | None:
    """A folder input's local folder, out of which links are not followed (--links inside)."""
    return storage.local_path(input_url) if source.kind == "files" and links == "inside" else None


def _reviews(written, manifest: dict) -> dict:
    """Scored rows flagged for review, by reason; a bundle without a review flag says so."""
    if not manifest.get("review"):
        return {"flagged": None, "by_reason": {}, "note": "the bundle has no review flag (trained before it): "
                                                        "review is null on every row"}
    if written is None:
        return {"flagged": 0, "by_reason": {}}
    by_reason = {row["review_reason"]: row["count"] for row in
                 written.filter("review").groupBy("review_reason").count().collect()}
    return {"flagged": sum(by_reason.values()), "by_reason": by_reason}


def _score_and_commit(spark, settings, output: ScoringOutput, manifest: dict, rows, truth, inputs: int,
                      skipped: int, source, model, scored_with: dict) -> ScoreResult:
    if inputs > skipped:
        _stage_rows(spark, settings, output, manifest, rows, inputs - skipped, source, model, scored_with)
    with output.lock():
        # Another run may have committed since this one started: checked again, and its rows win.
        output.repair()
        output.check(settings.mode, settings.incremental, scored_with, again=True)
        dropped = output.drop_landed() if settings.incremental else 0
        written = spark.read.parquet(output.staged_rows) if storage.exists(output.staged_rows) else None
        summary = _summary(output, manifest, written, source, model, scored_with)
        files = 0 if written is None else written.select("path").distinct().count()
        if files + dropped != inputs - skipped:
            raise RuntimeError(f"{inputs - skipped} files to score but {files} written and {dropped} dropped; "
                               "a dermspark bug")
        # A multi-frame DICOM file has a row per frame: rows = files + extra_frames.
        summary.update(inputs=inputs, skipped=skipped + dropped, skipped_at_commit=dropped,
                       extra_frames=summary["scored"] + summary["errors"] - files)
        _write_record(settings, output, manifest, summary, written, truth, model, scored_with)
        output.commit(replace_version=settings.mode == "overwrite", has_rows=written is not None)
    return ScoreResult.from_record(summary, output.url, join(output.url, "runs", output.run_id),
                                   read_command(output.url))


def _stage_rows(spark, settings, output: ScoringOutput, manifest: dict, rows, count: int, source, model,
                scored_with: dict) -> None:
    bundle_url, tracking_uri, registered = model
    classes = manifest["classes"]
    # One Arrow batch is one model call; image rows are large, so keep it small.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.batch_size))
    # Each Python worker loads the bundle once, from this machine's cached copy (bundle.py).
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    # Heatmaps go into the run's record, which the commit moves to runs/RUN_ID.
    explanations = (join(output.staged_record, "explanations"),
                    join(output.url, "runs", output.run_id, "explanations")) if settings.explain else None
    predict = make_predict_udf(bundle_url, settings.top_k, scored_with["melanoma_threshold"], source.read_paths,
                               threads, tracking_uri if registered else None, scored_with["temperature"],
                               settings.review_confidence, explanations,
                               _root(source, to_url(settings.input), settings.links))
    # A row per frame of a multi-frame DICOM file (frame 0 for anything else).
    rows = rows.withColumn("frame", F.explode(make_frames_udf(source.read_paths)("path", "content")))
    with stage("score", f"predicting {count:,} inputs with {output.version}") as counts:
        rows.select("path", "image_id", predict("path", "content", "frame").alias("r")).select(
            "path",
            # A DICOM row's image id is its SOP Instance UID, which labels and records join by.
            F.coalesce("r.sop_instance_uid", "image_id").alias("image_id"), "r.sha256", "r.predicted_label",
            "r.confidence",
            *[F.col("r.probabilities")[i].alias(f"prob_{name}") for i, name in enumerate(classes)],
            "r.top_labels", "r.top_probabilities", "r.melanoma_flag",
            "r.ood_score", "r.review", "r.review_reason", "r.explanation", "r.error", "r.error_detail",
            "r.frame", "r.study_instance_uid", "r.series_instance_uid", "r.sop_instance_uid",
            F.lit(manifest["model_name"]).alias("model_name"),
            F.lit(manifest["model_sha256"]).alias("bundle_sha256"),
            F.current_timestamp().alias("scored_at"),
        ).write.parquet(output.staged_rows)
        staged = spark.read.parquet(output.staged_rows)
        counts.update(rows=staged.count(), errors=staged.where("error is not null").count())


def read_command(output_url: str) -> str:
    """A line that reads the predictions table without Spark: DuckDB SQL on a local table, pandas
    (through fsspec) on any other store, where DuckDB would fetch an extension."""
    import shlex

    # Double quotes only inside, so that the shell's single quotes around it stay plain.
    table = join(output_url, "predictions")
    path = storage.local_path(table)
    if path is None:
        code = (f"import pandas as pd; rows = pd.read_parquet({json.dumps(table)}); "
                'print(rows.groupby(["model_version", "predicted_label"]).size())')
    else:
        code = ('import duckdb; print(duckdb.execute("SELECT model_version, predicted_label, count(*) AS n FROM '
                'read_parquet(?, hive_partitioning = true) GROUP BY ALL ORDER BY ALL", '
                f"[{json.dumps(path + '/**/*.parquet')}]).df())")
    return f".venv/bin/python -c {shlex.quote(code)}"


def _summary(output: ScoringOutput, manifest: dict, written, source, model, scored_with: dict) -> dict:
    """The run's record, counted from the rows it commits, so it describes the output exactly."""
    registered = model[2]
    by_reason = {} if written is None else {
        row["error"]: row["count"] for row in written.filter("error is not null").groupBy("error").count().collect()}
    total = 0 if written is None else written.count()
    return {
        "run_id": output.run_id,
        "scored": total - sum(by_reason.values()),
        "errors": sum(by_reason.values()),
        "by_reason": by_reason,
        "reviews": _reviews(written, manifest),
        "input_format": source.kind,
        "model_name": manifest["model_name"],
        "model_version": output.version,
        "registered_model": registered.describe() if registered else None,
        "bundle_sha256": manifest["model_sha256"],
        "calibration": {"temperature": scored_with["temperature"],
                        "melanoma_threshold": scored_with["melanoma_threshold"]},
        "scored_with": scored_with,
        "scoring_date": output.date,
        "predictions": output.partition_url if written is not None else None,
    }


def _write_record(settings, output: ScoringOutput, manifest: dict, summary: dict, written, truth, model,
                  scored_with: dict) -> None:
    tracking_uri = model[1]
    record, classes = output.staged_record, manifest["classes"]
    if truth is not None and written is not None:
        with stage("score", "evaluating against the labels") as counts:
            metrics = evaluate_scores(written, truth, classes, manifest, scored_with["temperature"],
                                      scored_with["melanoma_threshold"])
            counts["evaluated"] = metrics["coverage"]["evaluated"]
        summary["evaluated"] = metrics["coverage"]["evaluated"]
        storage.write_text(join(record, "metrics.json"), json.dumps(metrics, indent=2))
        if "labeled" in metrics:
            notes = [f"bundle `{manifest['model_name']}` version `{output.version}`, scoring run `{output.run_id}`",
                     f"labels matched by image id: {json.dumps(metrics['coverage'])}"]
            write_evaluation(record, metrics, classes, f"{manifest['model_name']} on scored images", notes)
    storage.write_text(join(record, "summary.json"), json.dumps(summary, indent=2))
    resolved = {**to_dict(settings), "run_id": output.run_id, "model_version": output.version,
                "mlflow_uri": shown(tracking_uri) if tracking_uri else None}
    storage.write_text(join(record, "settings.json"), json.dumps(resolved, indent=2, sort_keys=True))
