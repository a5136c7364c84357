"""One MLflow run per dermspark training run, driven from the Spark driver.

The driver opens the run before training (a resumed dermspark run finds its MLflow run again by
the `dermspark.run_id` tag and continues it), logs the settings and the plan as parameters,
and hands the run's id to Horovod's rank 0, which logs each epoch as it ends (train/epoch_log.py).
After training it logs the final metrics, the report and the bundle as a model, and registers
it when asked. Epochs that rank 0 could not log (a lost connection, a process killed between
its checkpoint and its log call) are logged from the saved history, so the series is whole.
"""

import json
import logging
import os
import tempfile
import time

from dermspark import DermsparkError, storage
from dermspark.tracking.server import RUN_TAG, mlflow_client, shown, tagged_run

log = logging.getLogger(__name__)

ARTIFACTS = ("report.md", "metrics.json", "settings.json")
MAX_PARAM = 6000  # MLflow's limit on a parameter's value


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow parameters: dotted keys, lists as JSON."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):
                flat.update(flatten(item, f"{name}.{index}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            flat[name] = text[:MAX_PARAM]
    return flat


def final_metrics(metrics: dict) -> dict[str, float]:
    """The test and validation figures, with their intervals, as MLflow metrics."""
    flat = {}
    for split in ("test", "validation"):
        section = metrics.get(split)
        if not section:
            continue
        for key in ("accuracy", "balanced_accuracy", "macro_auc", "baseline_accuracy", "count"):
            if section.get(key) is not None:
                flat[f"{split}_{key}"] = float(section[key])
        for key, bounds in (section.get("interval") or {}).items():
            if isinstance(bounds, list) and len(bounds) == 2:
                flat[f"{split}_{key}_low"], flat[f"{split}_{key}_high"] = map(float, bounds)
        for name, figures in section.get("per_class", {}).items():
            if figures.get("recall") is not None:  # None: no image of the class in this split
                flat[f"{split}_recall_{name}"] = float(figures["recall"])
        for key in ("sensitivity", "specificity"):
            if section.get("binary", {}).get(key) is not None:
                flat[f"{split}_{key}"] = float(section["binary"][key])
    for name, section in metrics.get("external", {}).items():
        flat.update(external_metrics(f"external_{name}", section))
    return flat


def external_metrics(prefix: str, section: dict) -> dict[str, float]:
    """An external dataset's figures (report.external) as MLflow metrics."""
    melanoma = section.get("melanoma") or {}
    figures = {
        "balanced_accuracy": section["balanced_accuracy"],
        "accuracy": section["accuracy"],
        "macro_auc": section["macro_auc"],
        "ece": section.get("ece"),
        "ece_before": section.get("ece_before"),
        "count": section["count"],
        "melanoma_auc": melanoma.get("auc"),
        "melanoma_sensitivity": melanoma.get("sensitivity"),
        "melanoma_specificity": melanoma.get("specificity"),
    }
    low, high = section.get("interval", {}).get("balanced_accuracy", (None, None))
    figures.update(balanced_accuracy_low=low, balanced_accuracy_high=high)
    figures.update({f"recall_{name}": row["recall"] for name, row in section["per_class"].items()})
    return {f"{prefix}_{key}": float(value) for key, value in figures.items() if value is not None}


class TrainingRun:
    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri, self.run_id = tracking_uri, run_id

    @classmethod
    def open(cls, tracking_uri: str, experiment: str, dermspark_run: str, params: dict, tags: dict) -> "TrainingRun":
        client = mlflow_client(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        earlier = tagged_run(client, [experiment_id], dermspark_run)
        if earlier:
            run_id = earlier
            client.update_run(run_id, status="RUNNING")
        else:
            run_id = client.create_run(
                experiment_id, run_name=dermspark_run, tags={RUN_TAG: dermspark_run, **tags}
            ).info.run_id
        run = cls(tracking_uri, run_id)
        run._log_params(client, flatten(params))
        log.info(
            "mlflow: run %s in experiment %s at %s%s",
            run_id,
            experiment,
            shown(tracking_uri),
            " (resumed)" if earlier else "",
        )
        return run

    def _log_params(self, client, params: dict[str, str]) -> None:
        """A resumed run keeps the parameters it started with (MLflow refuses to change one);
        what differs now is in settings.json and report.md."""
        from mlflow.entities import Param

        logged = client.get_run(self.run_id).data.params
        new = [Param(key, value) for key, value in params.items() if key not in logged]
        for start in range(0, len(new), 100):  # MLflow takes at most 100 parameters a call
            client.log_batch(self.run_id, params=new[start : start + 100])

    def for_ranks(self) -> dict:
        return {"tracking_uri": self.tracking_uri, "run_id": self.run_id}

    def fill_history(self, history: dict) -> int:
        """Logs the epochs of the history that the run lacks; returns how many."""
        from mlflow.entities import Metric

        client = mlflow_client(self.tracking_uri)
        logged = {metric.step for metric in client.get_metric_history(self.run_id, "loss")}
        now = int(time.time() * 1000)
        missing = [
            Metric(key, float(value), now, step)
            for key, series in history.items()
            for step, value in enumerate(series)
            if step not in logged
        ]
        for start in range(0, len(missing), 1000):
            client.log_batch(self.run_id, metrics=missing[start : start + 1000])
        return len({metric.step for metric in missing})

    def finish(self, output_url: str, metrics: dict, register: str | None) -> str | None:
        """Final figures, artifacts and the model; returns the registered version, if any."""
        import mlflow
        from mlflow.entities import Metric

        from dermspark.logged_model import log_bundle

        client = mlflow_client(self.tracking_uri)
        now = int(time.time() * 1000)
        client.log_batch(
            self.run_id, metrics=[Metric(key, value, now, 0) for key, value in final_metrics(metrics).items()]
        )
        with tempfile.TemporaryDirectory(prefix="dermspark-mlflow-") as local:
            report = os.path.join(local, "report")
            os.makedirs(report)
            for name in [*ARTIFACTS, *storage.glob(output_url, "*.png")]:
                with open(os.path.join(report, name), "wb") as handle:
                    handle.write(storage.read_bytes(storage.join(output_url, name)))
            client.log_artifacts(self.run_id, report)
            bundle = os.path.join(local, "bundle")
            storage.get_tree(storage.join(output_url, "model"), bundle)
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            with mlflow.start_run(run_id=self.run_id):
                info = log_bundle(bundle, register)
        return str(info.registered_model_version) if register else None

    def complete(self, output_url: str, metrics: dict, register: str | None) -> dict:
        """After the output is committed, which stays whatever MLflow answers."""
        from mlflow.exceptions import MlflowException

        try:
            filled = self.fill_history(metrics["history"])
            if filled:
                log.info("mlflow: %d epoch(s) logged from the saved history", filled)
            version = self.finish(output_url, metrics, register)
        except (MlflowException, OSError) as error:
            self.fail()
            raise DermsparkError(
                f"the model is saved in {output_url}, but MLflow failed to take it: {str(error).splitlines()[0][:300]}"
            ) from None
        return {"mlflow_run_id": self.run_id, **({"registered": f"models:/{register}/{version}"} if register else {})}

    def summarize_cv(self, output_url: str, summary: dict) -> None:
        """A cross-validation's parent run: the mean and sd over folds, the pooled out-of-fold
        figures, and the summary's files; then it is finished. After the summary is written,
        which stays whatever MLflow answers (as complete())."""
        from mlflow.exceptions import MlflowException

        try:
            self._log_cv(output_url, summary)
        except (MlflowException, OSError) as error:
            self.fail()
            raise DermsparkError(
                f"the summary is written in {output_url}, but MLflow failed to take it: "
                f"{str(error).splitlines()[0][:300]}"
            ) from None

    def _log_cv(self, output_url: str, summary: dict) -> None:
        from mlflow.entities import Metric

        flat = {
            f"cv_{key}_{part}": summary[key][part]
            for key in ("accuracy", "balanced_accuracy", "macro_auc")
            for part in ("mean", "sd")
        }
        flat.update({f"cv_pooled_{key}": summary["pooled"][key] for key in ("accuracy", "balanced_accuracy")})
        flat.update({f"cv_ece_test_{when}": summary["ece_test"][when]["mean"] for when in ("before", "after")})
        point = summary.get("operating_point") or {}
        flat.update({f"cv_melanoma_{key}": point.get(key) for key in ("sensitivity", "specificity")})
        for name, found in summary.get("external", {}).items():
            flat.update({f"cv_external_{name}_{key}_mean": found[key]["mean"] for key in found if key != "per_fold"})
        client = mlflow_client(self.tracking_uri)
        now = int(time.time() * 1000)
        client.log_batch(
            self.run_id, metrics=[Metric(key, float(value), now, 0) for key, value in flat.items() if value is not None]
        )
        with tempfile.TemporaryDirectory(prefix="dermspark-mlflow-") as local:
            for name in ("cv_report.md", "cv_metrics.json", "cv.json", "confusion_matrix_pooled.png"):
                with open(os.path.join(local, name), "wb") as handle:
                    handle.write(storage.read_bytes(storage.join(output_url, name)))
            client.log_artifacts(self.run_id, local, "report")
        client.set_terminated(self.run_id, status="FINISHED")

    def fail(self) -> None:
        try:
            mlflow_client(self.tracking_uri).set_terminated(self.run_id, status="FAILED")
        except Exception as error:  # the job's own error is the one to report
            log.warning("mlflow: could not mark run %s failed: %s", self.run_id, error)


def open_or_fail(*args, **kwargs) -> TrainingRun:
    from mlflow.exceptions import MlflowException

    try:
        return TrainingRun.open(*args, **kwargs)
    except MlflowException as error:
        raise DermsparkError(f"MLflow refused the run: {error.message.splitlines()[0]}") from None
