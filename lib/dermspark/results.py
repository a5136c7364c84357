"""What each job returns to its caller: a frozen record of what it wrote and counted, and the
closing lines a person reads (`summary()`: a title and its lines), printed by runtime.run_job.

The documents a job stores keep their own shape (a dataset's manifest, a training's
metrics.json, a scoring run's summary.json, monitor.json); these records are what crosses from
the library to its callers: the job files, the tests, the benchmarks.
"""

import os
from dataclasses import dataclass, field

from dermspark.manifests import DatasetManifest
from dermspark.report import cross_validation
from dermspark.report.evaluation import interval_text


@dataclass(frozen=True)
class IngestResult:
    output: str
    manifest: DatasetManifest

    def summary(self) -> tuple[str, dict]:
        manifest = self.manifest
        return f"ingest done: {self.output}", {
            "inputs": manifest.inputs,
            "written": manifest.written,
            "rejected": f"{manifest.rejected} {manifest.by_reason}",
            "per split": {split: sum(counts.values()) for split, counts in manifest.per_split.items()},
        }


@dataclass(frozen=True)
class TrainResult:
    """One trained model: its output folder and bundle, and metrics.json as written."""

    output: str
    bundle: str
    run_id: str
    tensorboard: str
    metrics: dict
    mlflow_run_id: str | None = None
    registered: str | None = None

    def summary(self) -> tuple[str, dict]:
        test = self.metrics["test"]
        return f"train done: bundle {self.bundle}", {
            "test images": test["count"],
            "test accuracy": f"{test['accuracy']:.4f}",
            "test balanced accuracy": f"{test['balanced_accuracy']:.4f}{interval_text(test)}",
            "test macro AUC": "n/a" if test["macro_auc"] is None else f"{test['macro_auc']:.4f}",
            "majority-class baseline accuracy": f"{test['baseline_accuracy']:.4f}",
            "report": os.path.join(self.output, "report.md"),
            "run id (rerun with it to resume)": self.run_id,
            "tensorboard": f"tensorboard --logdir {self.tensorboard}",
            **({"mlflow run": self.mlflow_run_id} if self.mlflow_run_id else {}),
            **({"registered model": self.registered} if self.registered else {}),
        }


@dataclass(frozen=True)
class CVResult:
    """A cross-validation: the folds this application trained, and either the folds still to
    train (another application's) or the summary over all of them."""

    output: str
    run_id: str
    folds: int
    trained: list[int]
    waiting_for: list[int] = field(default_factory=list)
    summary_figures: dict | None = None
    oof_predictions: str | None = None
    mlflow_run_id: str | None = None

    def summary(self) -> tuple[str, dict]:
        lines = {
            "folds trained now": ", ".join(map(str, self.trained)) or "none (all written earlier)",
            "run id (rerun with it to resume)": self.run_id,
        }
        if self.waiting_for:
            return f"train done: cross-validation folds in {self.output}", {
                **lines,
                "folds still to train": ", ".join(map(str, self.waiting_for)),
            }
        figures = self.summary_figures or {}

        def spread(key: str) -> str:
            return cross_validation.spread(figures, key, digits=4)

        return f"train done: {self.folds}-fold cross-validation in {self.output}", {
            **lines,
            "test balanced accuracy (mean ± sd over folds)": spread("balanced_accuracy"),
            "test accuracy (mean ± sd)": spread("accuracy"),
            "test macro AUC (mean ± sd)": spread("macro_auc"),
            "pooled out-of-fold balanced accuracy": f"{figures['pooled']['balanced_accuracy']:.4f}",
            "report": os.path.join(self.output, "cv_report.md"),
        }


@dataclass(frozen=True)
class ScoreResult:
    """A scoring run: where its rows and record went, its counts, and its summary.json as written
    (`record`: the model, calibration and review counts besides)."""

    output: str
    run: str
    read_with: str
    run_id: str
    inputs: int
    scored: int
    errors: int
    by_reason: dict[str, int]
    skipped: int
    predictions: str | None
    record: dict
    dicom_reports: dict | None = None

    @classmethod
    def from_record(cls, record: dict, output: str, run: str, read_with: str) -> "ScoreResult":
        counted = ("run_id", "inputs", "scored", "errors", "by_reason", "skipped", "predictions")
        return cls(output, run, read_with, **{key: record[key] for key in counted}, record=record)

    def summary(self) -> tuple[str, dict]:
        return f"score done: run {self.run_id}, records in {self.run}", {
            "inputs": self.inputs,
            "scored": self.scored,
            "errors": f"{self.errors} {self.by_reason}",
            "skipped": self.skipped,
            "predictions": self.predictions or "(nothing new)",
            "read them": self.read_with,
        }


@dataclass(frozen=True)
class MonitorResult:
    """A monitor report: where it went, and monitor.json as written."""

    output: str
    report: dict
    mlflow_run_id: str | None = None

    def summary(self) -> tuple[str, dict]:
        report = self.report
        return f"monitor done: {self.output}/report.md", {
            "runs": f"{report['runs']} ({report['new_runs']} read this time)",
            "model versions": len(report["model_versions"]),
            "flagged periods": report["flagged"] if report["reference"] else "(no --model: not judged)",
            **({"mlflow run": self.mlflow_run_id} if self.mlflow_run_id else {}),
        }
