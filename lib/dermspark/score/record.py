"""A scoring run's record under OUTPUT/runs/RUN_ID, counted from the rows it commits so it
describes the output exactly: summary.json, settings.json, and with labels metrics.json and the
report; and the one-line command that reads the predictions table without Spark. `run` is the
job's score.job.ScoreRun (not imported: the job imports this module)."""

import json

from dermspark import storage
from dermspark.manifests import BundleManifest
from dermspark.report.evaluation import write_evaluation
from dermspark.runtime import stage
from dermspark.score.evaluation import evaluate_scores
from dermspark.settings_core import to_dict
from dermspark.storage import join
from dermspark.tracking.server import shown


def read_command(output_url: str) -> str:
    """A line that reads the predictions table without Spark: DuckDB SQL on a local table, pandas
    (through fsspec) on any other store, where DuckDB would fetch an extension."""
    import shlex

    # Double quotes only inside, so that the shell's single quotes around it stay plain.
    table = join(output_url, "predictions")
    path = storage.local_path(table)
    if path is None:
        code = (
            f"import pandas as pd; rows = pd.read_parquet({json.dumps(table)}); "
            'print(rows.groupby(["model_version", "predicted_label"]).size())'
        )
    else:
        code = (
            'import duckdb; print(duckdb.execute("SELECT model_version, predicted_label, count(*) AS n FROM '
            'read_parquet(?, hive_partitioning = true) GROUP BY ALL ORDER BY ALL", '
            f"[{json.dumps(path + '/**/*.parquet')}]).df())"
        )
    return f".venv/bin/python -c {shlex.quote(code)}"


def summarize(run, written) -> dict:
    """The run's record, counted from the rows it commits, so it describes the output exactly."""
    output, manifest, scored_with = run.output, run.manifest, run.scored_with
    # One pass over the rows: the count of each error, and of none (the scored rows).
    groups = [] if written is None else written.groupBy("error").count().collect()
    counted = {row["error"]: row["count"] for row in groups}
    total = sum(counted.values())
    by_reason = {reason: count for reason, count in counted.items() if reason is not None}
    return {
        "run_id": output.run_id,
        "scored": total - sum(by_reason.values()),
        "errors": sum(by_reason.values()),
        "by_reason": by_reason,
        "reviews": _reviews(written, manifest),
        "input_format": run.source.kind,
        "model_name": manifest.model_name,
        "model_version": output.version,
        "registered_model": run.registered.describe() if run.registered else None,
        "bundle_sha256": manifest.model_sha256,
        "calibration": {
            "temperature": scored_with["temperature"],
            "melanoma_threshold": scored_with["melanoma_threshold"],
        },
        "scored_with": scored_with,
        "scoring_date": output.date,
        "predictions": output.partition_url if written is not None else None,
    }


def write_record(run, summary: dict, written) -> None:
    output, manifest, scored_with = run.output, run.manifest, run.scored_with
    record, classes = output.staged_record, manifest.classes
    if run.truth is not None and written is not None:
        with stage("score", "evaluating against the labels") as counts:
            metrics = evaluate_scores(
                written, run.truth, classes, manifest, scored_with["temperature"], scored_with["melanoma_threshold"]
            )
            counts["evaluated"] = metrics["coverage"]["evaluated"]
        summary["evaluated"] = metrics["coverage"]["evaluated"]
        storage.write_text(join(record, "metrics.json"), json.dumps(metrics, indent=2))
        if "labeled" in metrics:
            notes = [
                f"bundle `{manifest.model_name}` version `{output.version}`, scoring run `{output.run_id}`",
                f"labels matched by image id: {json.dumps(metrics['coverage'])}",
            ]
            write_evaluation(record, metrics, classes, f"{manifest.model_name} on scored images", notes)
    storage.write_text(join(record, "summary.json"), json.dumps(summary, indent=2))
    resolved = {
        **to_dict(run.settings),
        "run_id": output.run_id,
        "model_version": output.version,
        "mlflow_uri": shown(run.tracking_uri) if run.tracking_uri else None,
    }
    storage.write_text(join(record, "settings.json"), json.dumps(resolved, indent=2, sort_keys=True))


def _reviews(written, manifest: BundleManifest) -> dict:
    """Scored rows flagged for review, by reason; a bundle without a review flag says so."""
    if not manifest.review:
        return {
            "flagged": None,
            "by_reason": {},
            "note": "the bundle has no review flag (trained before it): review is null on every row",
        }
    if written is None:
        return {"flagged": 0, "by_reason": {}}
    by_reason = {
        row["review_reason"]: row["count"]
        for row in written.filter("review").groupBy("review_reason").count().collect()
    }
    return {"flagged": sum(by_reason.values()), "by_reason": by_reason}
