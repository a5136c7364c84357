"""The monitor job: the predictions table's runs summed once each (aggregate.py), kept in the
report folder's runs.json, so that a rerun reads only the runs scored since; then periods,
drift from the bundle's reference, monitor.json, report.md and the plots, written to a staged
folder that replaces the last report whole."""

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.commit import kind_of, mark, prepare_output, staged_output
from dermspark.manifests import BundleManifest
from dermspark.monitor import aggregate, periods, plots
from dermspark.monitor.aggregate import RunCounts
from dermspark.monitor.report import folder_name, grain_for, write_markdown
from dermspark.results import MonitorResult
from dermspark.runtime import stage
from dermspark.settings.monitor import MonitorSettings
from dermspark.settings_core import require, to_json
from dermspark.storage import join, to_url
from dermspark.tracking.server import tracking_uri

STATE = "runs.json"


def _previous(output_url: str) -> dict[str, RunCounts]:
    """The runs an earlier report summed, by run id ({} for a new report)."""
    if not storage.exists(join(output_url, STATE)):
        return {}
    stored = json.loads(storage.read_text(join(output_url, STATE)))["runs"]
    return {record["run_id"]: RunCounts.from_dict(record) for record in stored}


def _reference(
    settings: MonitorSettings, manifest: BundleManifest | None, records: list[RunCounts]
) -> tuple[dict | None, dict[str, dict]]:
    """What the report says of the bundle's reference, and the reference per model version it is
    compared with: the versions this bundle scored, or every version when it scored none."""
    if manifest is None:
        return None, {}
    found = manifest.reference
    if found is None:
        raise DermsparkError(
            f"--model {settings.model} records no reference predictions (trained before "
            "dermspark recorded them): train it again, or leave --model out for no drift figures"
        )
    versions = sorted({record.model_version for record in records})
    own = sorted({record.model_version for record in records if record.bundle_sha256 == manifest.model_sha256})
    compared = own or versions
    described = {
        "bundle": settings.model,
        "split": found["split"],
        "predictions": found["predictions"],
        "matched": bool(own),
        "compared_versions": compared,
    }
    return described, {version: found for version in compared}


def _manifest(settings: MonitorSettings) -> BundleManifest | None:
    if not settings.model:
        return None
    from dermspark.bundle import read_manifest
    from dermspark.tracking.registry import locate

    location, uri, _ = locate(settings.model, settings.mlflow_uri)
    return read_manifest(location, uri)


def _input_of(source: str, run_id: str) -> str | None:
    """The last part of what the run scored (its --input), which names a run better than its id."""
    settings = join(source, "runs", run_id, "settings.json")
    if not storage.exists(settings):
        return None
    found = str(json.loads(storage.read_text(settings)).get("input") or "").rstrip("/")
    return found.rsplit("/", 1)[-1] or None


def _check_table(table_url: str) -> None:
    if kind_of(table_url) != "score":
        raise DermsparkError(
            f"--predictions {table_url} is not a scoring output (the folder score's --output "
            "names, holding predictions/ and runs/)"
        )


def run_monitor(spark: SparkSession, settings: MonitorSettings) -> MonitorResult:
    require(settings)
    source, output_url = to_url(settings.predictions), to_url(settings.output)
    _check_table(source)
    prepare_output(output_url, "overwrite", "monitor")
    table = join(source, "predictions")
    with stage("monitor", "listing the scoring runs") as counts:
        listed = aggregate.partitions(table, settings.since) if storage.exists(table) else []
        previous = _previous(output_url)
        new = [run for run in listed if run.run_id not in previous]
        counts.update(runs=len(listed), new=len(new))
    with stage("monitor", f"summing {len(new)} new run(s)"):
        records = [previous[run.run_id] for run in listed if run.run_id in previous]
        records = sorted(
            records
            + [
                dataclasses.replace(record, input=_input_of(source, record.run_id))
                for record in aggregate.summarise(spark, table, new)
            ],
            key=lambda record: (record.scoring_date, record.started or "", record.run_id),
        )
    manifest = _manifest(settings)
    reference, references = _reference(settings, manifest, records)
    result: dict[str, Any] = {
        "predictions": source,
        "since": settings.since,
        "runs": len(records),
        "new_runs": len(new),
        "model_versions": sorted({record.model_version for record in records}),
        "reference": reference,
        "periods": {grain: periods.periods(records, grain, references) for grain in periods.GRAINS},
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    result["flagged"] = sum(
        bool((entry["drift"] or {}).get("flagged")) for entries in result["periods"].values() for entry in entries
    )
    with staged_output(output_url, "overwrite") as staging, stage("monitor", "writing the report"):
        mark(staging, "monitor")
        drawn = _draw(result, staging)
        storage.write_text(join(staging, STATE), json.dumps({"runs": [record.to_dict() for record in records]}))
        storage.write_text(join(staging, "monitor.json"), json.dumps(result, indent=2))
        storage.write_text(join(staging, "report.md"), write_markdown(result, drawn))
        storage.write_text(join(staging, "settings.json"), to_json(settings))
    uri, logged = tracking_uri(settings.mlflow_uri), None
    if uri:
        from dermspark.monitor.mlflow_report import log_report

        trained_by = manifest.run_id if manifest else None
        logged = log_report(uri, output_url, trained_by, f"monitor {source}")
    return MonitorResult(output_url, result, logged)


def _draw(result: dict, staging: str) -> dict:
    """Each model version's plots at the grain its report section shows."""
    drawn: dict = {}
    for version in result["model_versions"]:
        runs = [entry for entry in result["periods"]["run"] if entry["model_version"] == version]
        grain = grain_for(len(runs))
        entries = [entry for entry in result["periods"][grain] if entry["model_version"] == version]
        folder = f"plots/{folder_name(version)}/{grain}"
        files = plots.draw(entries, version, grain, join(staging, folder))
        drawn[version] = {grain: {name: f"{folder}/{file}" for name, file in files.items()}}
    return drawn
