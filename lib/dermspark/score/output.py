"""The scoring output: one table that grows run by run, and a record per run.

    OUTPUT/predictions/model_version=V/scoring_date=D/run_id=R/part-*.parquet
    OUTPUT/runs/R/summary.json, settings.json (and metrics.json, report.md with --labels)

`spark.read.parquet("OUTPUT/predictions")` reads every run, with the three partition columns.
A run is written under OUTPUT/_staging/R (Spark ignores folders starting with _) and committed
by moving its folder into the table (one rename; on object stores a copy), so a killed run adds no rows. The run record
is moved into runs/ just after.
"""

import json

from pyspark.sql import DataFrame, SparkSession

from dermspark import DermsparkError, storage
from dermspark.storage import join

PREDICTIONS, RUNS, STAGING = "predictions", "runs", "_staging"
MODES = ("error", "overwrite")


class ScoringOutput:
    def __init__(self, spark: SparkSession, output_url: str, version: str, date: str, run_id: str):
        self.spark = spark
        self.url, self.version, self.date, self.run_id = output_url, version, date, run_id
        # Escaped as Spark escapes partition values, so the column reads NAME/VERSION again.
        self.version_url = join(output_url, PREDICTIONS, f"model_version={version.replace('/', '%2F')}")
        self.partition_url = join(self.version_url, f"scoring_date={date}", f"run_id={run_id}")
        self.staging = join(output_url, STAGING, run_id)
        self.staged_rows = join(self.staging, "rows")
        self.staged_record = join(self.staging, "record")

    def check(self, mode: str, incremental: bool, scored_with: dict) -> None:
        """Before any work: a rerun must never duplicate rows of this model version, nor add rows
        that mean something else than the version's earlier rows."""
        if mode not in MODES:
            raise DermsparkError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "error" and not incremental and storage.exists(self.version_url):
            raise DermsparkError(
                f"{self.url} already has predictions of model version {self.version}: pass "
                "--incremental to score only new files, or --mode overwrite to replace that version's rows"
            )
        if incremental:
            self._check_scored_alike(scored_with)

    def _check_scored_alike(self, scored_with: dict) -> None:
        """An incremental run skips the files this version has rows for, so its own rows must be
        made as those were: same bundle (manifest included), temperature, melanoma threshold and
        top-k. Only runs whose rows are still in the table count (an overwrite drops the others).
        Records from before `scored_with` existed hold the temperature and threshold alone."""
        runs = [name.split("=", 1)[1] for name in storage.glob(self.version_url, "scoring_date=*/run_id=*")]
        for run_id in runs:
            summary = json.loads(storage.read_text(join(self.url, RUNS, run_id, "summary.json")))
            theirs = summary.get("scored_with") or summary.get("calibration", {})
            differ = sorted(key for key in scored_with if key in theirs and theirs[key] != scored_with[key])
            if differ:
                shown = ", ".join(f"{key} {theirs[key]} (now {scored_with[key]})" for key in differ)
                raise DermsparkError(
                    f"model version {self.version} in {self.url} has rows scored with {shown}; --incremental "
                    "adds rows only to a version scored alike: pass --model-version NAME for a new version, "
                    "or --mode overwrite to rescore every file"
                )

    def scored_hashes(self) -> DataFrame | None:
        """Content hashes that already have a row (error rows included) from this model version."""
        if not storage.exists(self.version_url):
            return None
        return self.spark.read.parquet(self.version_url).select("sha256").where("sha256 is not null").distinct()

    def commit(self, replace_version: bool, has_rows: bool) -> None:
        """Moves the staged rows into the table, then the run record into runs/. A run with
        nothing new to score adds a record and no partition."""
        if replace_version:
            # The version's earlier rows go in the same step as the new ones arrive: between the
            # two renames the version is briefly absent, never doubled.
            replaced = join(self.staging, "replaced")
            if storage.exists(self.version_url):
                storage.move(self.version_url, replaced)
        if has_rows:
            storage.makedirs(join(self.version_url, f"scoring_date={self.date}"))
            storage.move(self.staged_rows, self.partition_url)
        storage.makedirs(join(self.url, RUNS))
        storage.move(self.staged_record, join(self.url, RUNS, self.run_id))
        self.abandon()

    def abandon(self) -> None:
        """Removes this run's staging folder, and the staging parent once no run is left in it
        (a killed run's folder stays there, hidden from readers, until removed by hand)."""
        if storage.exists(self.staging):
            storage.delete(self.staging)
        parent = join(self.url, STAGING)
        if storage.exists(parent) and not storage.glob(parent, "*"):
            storage.delete(parent)
