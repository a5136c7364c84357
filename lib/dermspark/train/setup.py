"""The checks every model of a training job shares, made once before anything slow (a missing
weights file, a silent tracking server, a cluster too small, paths executors cannot see, the
dataset, the parent bundle, the external datasets): their outcome is a `Setup`."""

import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

from pyspark.sql import SparkSession

import dermspark
from dermspark import DermsparkError
from dermspark.cluster import check_cluster, check_reachable
from dermspark.manifests import DatasetManifest
from dermspark.models import get_recipe
from dermspark.models.registry import Recipe, check_options
from dermspark.models.weights import resolve_weights, ship_weights
from dermspark.settings.train import TrainSettings
from dermspark.settings_core import require
from dermspark.storage import join, to_url
from dermspark.tracking.server import check_name, check_server, tracking_uri
from dermspark.train.dataset import external_datasets, pick_size, read_manifest
from dermspark.train.parent import resolve_parent

VERSIONED = ("tensorflow-cpu", "tensorflow", "horovod", "petastorm", "pyspark", "pyarrow", "numpy")


def library_versions() -> dict:
    versions = {"python": platform.python_version(), "dermspark": dermspark.__version__}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class Setup:
    """What every model of a job shares, checked once before anything slow."""

    recipe: Recipe
    weights_option: dict
    mlflow_uri: str | None
    dataset_root: str
    dataset_url: str
    dataset_manifest: DatasetManifest
    output_url: str
    store_root: str
    externals: list  # train.dataset.external_datasets
    parent: dict | None  # train.parent.resolve_parent


def new_run_id() -> str:
    return datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S")


def check_setup(spark: SparkSession, settings: TrainSettings) -> Setup:
    require(settings)  # its limits, choices and rules
    recipe = get_recipe(settings.model)
    check_options(settings.model, settings.model_options)
    # Before anything slow: a missing weights file or a silent tracking server is one clear error.
    weights_option = _weights_option(recipe, settings)
    mlflow_uri = _tracking(settings)
    check_cluster(spark, settings.num_proc, what=f"--num-proc {settings.num_proc}")
    dataset_root, output_url = to_url(settings.dataset), to_url(settings.output)
    # Beside a remote output, the checkpoints are on the same storage.
    store_root = to_url(settings.store) if settings.store else output_url + ".checkpoints"
    check_reachable(spark, {"--dataset": dataset_root, "--output": output_url, "--store": store_root})
    if weights_option.get("weights", "none") != "none":
        weights_option["weights"] = ship_weights(spark, weights_option["weights"])
    dataset_manifest = read_manifest(dataset_root)
    parent = resolve_parent(spark, settings, dataset_manifest.classes)
    dataset_url = join(dataset_root, pick_size(dataset_manifest, recipe.input_size, settings.model))
    externals = external_datasets(settings.external, dataset_manifest, recipe.input_size, settings.model)
    check_reachable(spark, {f"--external {external['name']}": external["root"] for external in externals})
    if settings.ood_check:
        check_reachable(spark, {"--ood-check": to_url(settings.ood_check)})
    return Setup(
        recipe,
        weights_option,
        mlflow_uri,
        dataset_root,
        dataset_url,
        dataset_manifest,
        output_url,
        store_root,
        externals,
        parent,
    )


def _tracking(settings: TrainSettings) -> str | None:
    uri = tracking_uri(settings.mlflow_uri)
    if settings.register:
        check_name(settings.register, "--register")
        if not uri:
            raise DermsparkError("--register needs a model registry: give --mlflow-uri or MLFLOW_TRACKING_URI")
    if uri:
        check_server(uri)
    return uri


def _weights_option(recipe, settings: TrainSettings) -> dict:
    """--weights reaches builders that load a pretrained base, resolved here so that a missing
    file fails before any Horovod process starts: a URL, or a file on this machine that
    ship_weights later hands to every executor."""
    if recipe.pretrained is None:
        if settings.weights in (None, "none"):
            return {}
        raise DermsparkError(f"model {settings.model} has no pretrained base to load --weights into")
    wanted = settings.weights or recipe.defaults.get("weights", "imagenet")
    return {"weights": resolve_weights(wanted, recipe.pretrained) or "none"}
