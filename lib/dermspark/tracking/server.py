"""MLflow and TensorBoard: where a run's figures and models go besides its output folder.

Every job that talks to MLflow takes its tracking server from --mlflow-uri (or the YAML file),
else from MLFLOW_TRACKING_URI. The server is asked once, before any slow work, whether it
answers; a job never waits through MLflow's own retries (minutes) to find out that it does not.
"""

import os
import re
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from dermspark import DermsparkError

# MLflow 3 reports usage unless told not to; nothing but the user's tracking server is reached.
# Its run links on stdout would repeat what the job prints.
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
NAME = re.compile(r"[A-Za-z0-9._-]+")
RUN_TAG = "dermspark.run_id"  # each MLflow run's dermspark run id: how a run is found again


def quiet_mlflow() -> None:
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)


def tracking_uri(setting: str | None) -> str | None:
    """The setting, else MLFLOW_TRACKING_URI; None when neither names a server."""
    return setting or os.environ.get("MLFLOW_TRACKING_URI") or None


def shown(uri: str) -> str:
    """The URI without a user or password, fit for a message or a log line."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return uri


def check_server(uri: str, timeout: float = 10.0) -> None:
    """One clear error, at once, when an HTTP tracking server does not answer its health check.
    Other URIs (a database, a folder) are checked by the first call that uses them."""
    quiet_mlflow()
    if urlsplit(uri).scheme not in ("http", "https"):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        problem = f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        problem = str(getattr(error, "reason", error))
    raise DermsparkError(
        f"the MLflow tracking server {shown(uri)} does not answer ({problem}): start it "
        "(scripts/mlflow.sh start) or fix --mlflow-uri / MLFLOW_TRACKING_URI"
    )


def mlflow_client(tracking_uri: str):
    """The one way dermspark builds MLflow's client: tracking and registry on the same server."""
    quiet_mlflow()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def tagged_run(client, experiment_ids: list[str], dermspark_run: str) -> str | None:
    """The MLflow run a dermspark run id was logged to (its RUN_TAG), or None."""
    found = client.search_runs(experiment_ids, filter_string=f"tags.`{RUN_TAG}` = '{dermspark_run}'", max_results=1)
    return found[0].info.run_id if found else None


def check_name(name: str, what: str) -> str:
    if not NAME.fullmatch(name):
        raise DermsparkError(f"{what} {name!r} may hold only letters, digits, '.', '_' and '-'")
    return name
