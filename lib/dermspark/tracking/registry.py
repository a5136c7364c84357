"""Registered models: `models:/NAME/VERSION` and `models:/NAME@ALIAS` to the bundle they hold.

The driver (the scoring job, the service) resolves a registry URI once, to one version and the
artifact location of its bundle, so an alias moved during a job cannot mix two models in one
output. Workers get that location and fetch the bundle through MLflow into the same per-machine
cache as any remote bundle (dermspark.bundle), once per machine.
"""

import logging
import os
import re
from dataclasses import dataclass

from dermspark import DermsparkError
from dermspark.tracking.server import mlflow_client, quiet_mlflow, shown

log = logging.getLogger(__name__)

PREFIX = "models:/"
# Where the bundle sits inside a logged model (logged_model names its folder "bundle").
BUNDLE_PATH = "artifacts/bundle"
# Artifact locations only MLflow can read; every other location goes through dermspark.storage.
MLFLOW_SCHEMES = ("mlflow-artifacts", "runs", "models", "dbfs")
_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/@]+))/?")


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    alias: str | None
    bundle_url: str  # the bundle's artifact location, fixed to this version

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "alias": self.alias, "uri": f"{PREFIX}{self.label}"}


def is_registry_uri(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


def is_mlflow_location(url: str) -> bool:
    return url.split(":", 1)[0] in MLFLOW_SCHEMES


def resolve(uri: str, tracking_uri: str | None) -> Registered:
    match = _URI.fullmatch(uri)
    if not match:
        raise DermsparkError(f"{uri} is not a registered model URI: use models:/NAME/VERSION or models:/NAME@ALIAS")
    if not tracking_uri:
        raise DermsparkError(
            f"{uri} names a registered model: give the registry with --mlflow-uri or MLFLOW_TRACKING_URI"
        )
    from mlflow.exceptions import MlflowException

    client = mlflow_client(tracking_uri)
    name, version, alias = match["name"], match["version"], match["alias"]
    try:
        found = client.get_model_version(name, version) if version else client.get_model_version_by_alias(name, alias)
        location = client.get_model_version_download_uri(name, found.version)
    except MlflowException as error:
        raise DermsparkError(
            f"{uri} is not in the registry at {shown(tracking_uri)}: {error.message.splitlines()[0]}"
        ) from None
    registered = Registered(name, str(found.version), alias, f"{location.rstrip('/')}/{BUNDLE_PATH}")
    log.info("model %s is %s", uri, registered.label)
    return registered


def fetch(location: str, tracking_uri: str | None, folder: str) -> None:
    """Downloads the artifact folder at location into folder (which exists and is empty)."""
    quiet_mlflow()
    import mlflow.artifacts

    mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=folder, tracking_uri=tracking_uri)
    # download_artifacts puts the folder itself inside dst_path; lift its content up one level.
    inner = os.path.join(folder, os.path.basename(location.rstrip("/")))
    if os.path.isdir(inner):
        for name in os.listdir(inner):
            os.rename(os.path.join(inner, name), os.path.join(folder, name))
        os.rmdir(inner)


def read_text(location: str, tracking_uri: str | None) -> str:
    import tempfile

    quiet_mlflow()
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="dermspark-mlflow-") as folder:
        path = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=folder, tracking_uri=tracking_uri)
        with open(path) as handle:
            return handle.read()


def locate(model: str, mlflow_uri: str | None) -> tuple[str, str | None, Registered | None]:
    """--model as the jobs take it: (where the bundle is, the tracking server, the registered
    version when it came from the registry)."""
    from dermspark.storage import to_url
    from dermspark.tracking.server import check_server, tracking_uri

    if not is_registry_uri(model):
        return to_url(model), tracking_uri(mlflow_uri), None
    uri = tracking_uri(mlflow_uri)
    if uri:
        check_server(uri)
    registered = resolve(model, uri)
    return registered.bundle_url, uri, registered
