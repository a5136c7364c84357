"""The monitor's report logged to MLflow: into the run that trained the bundle given with --model
(found by its dermspark run id tag), else into a run of its own in the `dermspark-monitor`
experiment. Artifacts go under `monitor/`, replaced by each later report."""

import logging
import os
import tempfile

from dermspark import storage
from dermspark.tracking.server import check_server, mlflow_client, shown, tagged_run

log = logging.getLogger(__name__)
EXPERIMENT = "dermspark-monitor"


def _training_run(client, dermspark_run: str | None) -> str | None:
    if not dermspark_run:
        return None
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return tagged_run(client, experiments, dermspark_run)


def _own_run(client, name: str) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    experiment = found.experiment_id if found else client.create_experiment(EXPERIMENT)
    return client.create_run(experiment, run_name=name).info.run_id


def log_report(tracking_uri: str, report_url: str, dermspark_run: str | None, name: str) -> str:
    """Logs report_url's files (any store) to the training run of `dermspark_run`, or to a new
    run named `name`; returns the MLflow run id."""
    check_server(tracking_uri)
    client = mlflow_client(tracking_uri)
    run_id = _training_run(client, dermspark_run)
    if run_id is None:
        run_id = _own_run(client, name)
        client.set_terminated(run_id)
    with tempfile.TemporaryDirectory(prefix="dermspark-monitor-") as local:
        for relative in storage.files_below(report_url):
            source = storage.join(report_url, relative)
            target = os.path.join(local, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(storage.read_bytes(source))
        client.log_artifacts(run_id, local, artifact_path="monitor")
    log.info("mlflow: the report is logged to run %s at %s", run_id, shown(tracking_uri))
    return run_id
