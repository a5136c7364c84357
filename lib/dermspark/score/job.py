"""The scoring job: image files -> the UDF -> Parquet, committed atomically, with a summary."""

import json
import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from dermspark import DermsparkError
from dermspark.bundle import read_manifest
from dermspark.files import list_files, tune_for_images, with_contents
from dermspark.score.udf import make_predict_udf
from dermspark.settings import ScoreSettings, require, to_json
from dermspark.storage import HadoopFS, join, local_path, prepare_output, staged_output, to_url

log = logging.getLogger(__name__)


def run_score(spark: SparkSession, settings: ScoreSettings) -> dict:
    require(settings, "model", "input", "output")
    fs = HadoopFS(spark)
    bundle_url, input_url, output_url = (to_url(p) for p in (settings.model, settings.input, settings.output))
    manifest = read_manifest(bundle_url)
    if not fs.is_dir(input_url):
        raise DermsparkError(f"input folder {input_url} does not exist or is not a folder")
    prepare_output(fs, output_url, settings.mode)

    listing = list_files(spark, [input_url], settings.glob).select("path")
    inputs = listing.count()
    if inputs == 0:
        raise DermsparkError(f"no files matching {settings.glob!r} under {input_url}")
    tune_for_images(spark)
    files = with_contents(spark, listing, [input_url], settings.glob)
    # One Arrow batch is one model batch; image rows are large, so keep it small.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.batch_size))
    predict = make_predict_udf(local_path(bundle_url) or bundle_url)
    classes = manifest["classes"]
    scored = files.select("path", predict("content").alias("result")).select(
        "path",
        "result.predicted_label",
        "result.confidence",
        *[F.col("result.probabilities")[i].alias(f"prob_{name}") for i, name in enumerate(classes)],
        "result.error",
        F.lit(manifest["model_name"]).alias("model_name"),
        F.lit(manifest["model_sha256"]).alias("model_sha256"),
        F.current_timestamp().alias("scored_at"),
    )

    with staged_output(fs, output_url) as staging:
        predictions_url = join(staging, "predictions.parquet")
        scored.write.parquet(predictions_url)
        # Counted from what was written, so the summary describes the output exactly.
        written = spark.read.parquet(predictions_url)
        by_reason = {
            row["error"]: row["count"]
            for row in written.filter(F.col("error").isNotNull()).groupBy("error").count().collect()
        }
        total = written.count()
        if total != inputs:
            raise RuntimeError(f"{inputs} files listed but {total} rows written; a dermspark bug")
        summary = {
            "inputs": inputs,
            "scored": total - sum(by_reason.values()),
            "errors": sum(by_reason.values()),
            "by_reason": by_reason,
            "skipped": 0,
            "model_name": manifest["model_name"],
        }
        fs.write_text(join(staging, "summary.json"), json.dumps(summary, indent=2))
        fs.write_text(join(staging, "settings.json"), to_json(settings))
    log.info("score: %d files scored, %d errors", summary["scored"], summary["errors"])
    return {**summary, "output": output_url, "predictions": join(output_url, "predictions.parquet")}
