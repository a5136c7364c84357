"""The scoring output: one table that grows run by run, and a record per run.

    OUTPUT/predictions/model_version=V/scoring_date=D/run_id=R/part-*.parquet
    OUTPUT/runs/R/summary.json, settings.json (and metrics.json, report.md with --labels)

`spark.read.parquet("OUTPUT/predictions")` reads every run, with the three partition columns.
A run is written under OUTPUT/_staging/R (Spark ignores folders starting with _) and committed
under the output's lock (commit.py): first the checks again, since another run may have committed
meanwhile (its rows for files this run also scored are dropped from this run's, so each file
keeps one row per model version); then a journal of the steps (_staging/R/commit.json); then
the renames (copies on object stores) of the rows into the table and of the run record into
runs/. A run killed before the journal adds nothing; one killed after it is completed by the
next run to take the lock (repair), so no rows are left without their record.
"""

import json
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dermspark import DermsparkError, commit, storage
from dermspark.storage import join

log = logging.getLogger(__name__)

PREDICTIONS, RUNS, STAGING, LOCK, JOURNAL = "predictions", "runs", "_staging", "_commit.lock", "commit.json"


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
        # The version's runs when this run read what it had scored (None: before that).
        self.runs_at_start: set[str] | None = None

    def lock(self):
        """The output's commit lock: held for the checks at the start and for the commit."""
        return commit.locked(join(self.url, LOCK), self.url)

    def runs(self) -> set[str]:
        return {name.split("=", 1)[1] for name in storage.glob(self.version_url, "scoring_date=*/run_id=*")}

    def check(self, mode: str, incremental: bool, scored_with: dict, again: bool = False) -> None:
        """Before any work, and again under the lock at the commit (again=True): a rerun must never
        duplicate rows of this model version, nor add rows that mean something else than the
        version's earlier rows. Call under the lock."""
        if mode == "error" and not incremental and storage.exists(self.version_url):
            if again:
                raise DermsparkError(
                    f"another scoring run committed rows of model version {self.version} to {self.url} while "
                    "this one ran; this one wrote nothing: pass --incremental to score what that run left"
                )
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
        for run_id in sorted(self.runs()):
            summary_url = join(self.url, RUNS, run_id, "summary.json")
            if not storage.exists(summary_url):
                raise DermsparkError(
                    f"{self.url} has rows of scoring run {run_id} but not its record ({RUNS}/{run_id}), and "
                    f"nothing to complete it from: delete {self.version_url}/scoring_date=*/run_id={run_id} "
                    "to score those files again"
                )
            summary = json.loads(storage.read_text(summary_url))
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
        """Content hashes that already have a row (error rows included) from this model version.
        Call under the lock: the runs counted here are those a commit later checks against."""
        self.runs_at_start = self.runs()
        return self._hashes(self.runs_at_start)

    def _hashes(self, runs: set[str]) -> DataFrame | None:
        if not runs:
            return None
        table = self.spark.read.parquet(self.version_url)
        return table.where(F.col("run_id").isin(sorted(runs))).select("sha256").where("sha256 is not null").distinct()

    def drop_landed(self) -> int:
        """Under the lock, at the commit of an incremental run: the staged rows for files that runs
        committed since this one started have scored are dropped. Returns how many files (a
        multi-frame DICOM file has a row per frame)."""
        landed = self._hashes(self.runs() - (self.runs_at_start or set()))
        if landed is None or not storage.exists(self.staged_rows):
            return 0
        staged = self.spark.read.parquet(self.staged_rows)
        kept = staged.join(landed, "sha256", "left_anti")
        before, after = (frame.select("path").distinct().count() for frame in (staged, kept))
        if after < before:
            kept.write.parquet(join(self.staging, "rows-kept"))
            storage.delete(self.staged_rows)
            storage.move(join(self.staging, "rows-kept"), self.staged_rows)
            log.info("score: %d files were scored meanwhile by another run: their rows stay that run's", before - after)
        return before - after

    def commit(self, replace_version: bool, has_rows: bool) -> None:
        """Under the lock: writes the journal, then moves the staged rows into the table and the
        run record into runs/. A run with nothing new to score adds a record and no partition."""
        storage.write_text(
            join(self.staging, JOURNAL),
            json.dumps(
                {
                    "run_id": self.run_id,
                    "replace_version": replace_version,
                    "has_rows": has_rows,
                    "version_url": self.version_url,
                    "partition_url": self.partition_url,
                }
            ),
        )
        _roll_forward(self.url, self.staging)
        self.mark()

    def mark(self) -> None:
        """Under the lock: records that scoring writes this output (commit.MARKER)."""
        if not storage.exists(join(self.url, commit.MARKER)):
            commit.mark(self.url, "score")

    def repair(self) -> None:
        """Under the lock: completes every commit a killed run journaled but did not finish, and
        files the record of runs killed between the two renames by code before the journal."""
        staging_root = join(self.url, STAGING)
        for run_id in storage.glob(staging_root, "*") if storage.exists(staging_root) else []:
            staging = join(staging_root, run_id)
            if storage.exists(join(staging, JOURNAL)):
                log.warning("score: completing the commit of scoring run %s, which was stopped during it", run_id)
                _roll_forward(self.url, staging)
            elif storage.glob(join(self.url, PREDICTIONS), f"*/scoring_date=*/run_id={run_id}") and storage.exists(
                join(staging, "record")
            ):
                storage.move(join(staging, "record"), join(self.url, RUNS, run_id))
                storage.delete(staging)

    def abandon(self) -> None:
        """Removes this run's staging folder, unless its commit was journaled: then the next run
        completes the commit (repair). The empty _staging folder stays, since a run beside this
        one may be writing into it."""
        if storage.exists(join(self.staging, JOURNAL)):
            log.warning(
                "score: the commit of %s stopped midway; the next run on %s completes it", self.run_id, self.url
            )
        elif storage.exists(self.staging):
            storage.delete(self.staging)


def _roll_forward(output_url: str, staging: str) -> None:
    """The journaled commit's steps, each done only if it is not yet: safe to repeat after a kill
    at any point (an object store's move copies everything before it deletes anything)."""
    intent = json.loads(storage.read_text(join(staging, JOURNAL)))
    rows, record = join(staging, "rows"), join(staging, "record")
    if intent["replace_version"] and storage.exists(rows) and storage.exists(intent["version_url"]):
        # The version's earlier rows go in the same step as the new ones arrive: between the
        # two moves the version is briefly absent, never doubled.
        storage.move(intent["version_url"], join(staging, "replaced"))
    if intent["has_rows"] and storage.exists(rows):
        storage.makedirs(intent["partition_url"].rsplit("/", 1)[0])
        storage.move(rows, intent["partition_url"])
    if storage.exists(record):
        storage.makedirs(join(output_url, RUNS))
        storage.move(record, join(output_url, RUNS, intent["run_id"]))
    storage.delete(staging)
