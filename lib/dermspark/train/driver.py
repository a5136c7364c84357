"""The training job: settings -> checks -> horovod.spark.run -> metrics and bundle."""

import hashlib
import json
import logging
import os
import platform
from datetime import UTC, datetime
from importlib import metadata

from pyspark.sql import SparkSession

import dermspark
from dermspark import DermsparkError, storage
from dermspark.cluster import check_cluster, check_reachable
from dermspark.models import get_recipe
from dermspark.models.registry import check_options
from dermspark.models.weights import resolve_weights, ship_weights
from dermspark.report.evaluation import write_evaluation
from dermspark.settings import TrainSettings, require, to_json
from dermspark.storage import join, prepare_output, staged_output, to_url
from dermspark.tracking.run import open_or_fail
from dermspark.tracking.server import QUIET, check_name, check_server, shown, tracking_uri
from dermspark.train.plan import cache_training, make_plan

log = logging.getLogger(__name__)

VERSIONED = ("tensorflow-cpu", "tensorflow", "horovod", "petastorm", "pyspark", "pyarrow", "numpy")


def library_versions() -> dict:
    versions = {"python": platform.python_version(), "dermspark": dermspark.__version__}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _read_dataset_manifest(dataset_url: str) -> dict:
    manifest_url = join(dataset_url, "manifest.json")
    if not storage.exists(manifest_url):
        raise DermsparkError(
            f"{dataset_url} is not an ingested dataset (no manifest.json): run the ingest job first"
        )
    return json.loads(storage.read_text(manifest_url))


def _pick_dataset(manifest: dict, input_size: tuple[int, int], model: str) -> str:
    wanted = f"{input_size[0]}x{input_size[1]}"
    if wanted not in manifest["datasets"]:
        raise DermsparkError(
            f"model {model} needs {wanted} images but the dataset has only "
            f"{', '.join(manifest['datasets'])}: rerun ingest with --sizes {wanted}"
        )
    return manifest["datasets"][wanted]


def _check_shards(dataset_url: str, num_proc: int) -> list[int]:
    """Training rows each rank will read. Petastorm gives row group i to shard i % shard_count
    (its seed only reorders), so this replicates its assignment exactly. A rank whose shard has
    no training row would wait forever on an endless reader, so that is an error here."""
    import pyarrow.parquet as pq
    from petastorm.etl.dataset_metadata import load_row_groups
    from petastorm.fs_utils import get_filesystem_and_path_or_paths

    from dermspark import petastorm_compat

    filesystem, path = get_filesystem_and_path_or_paths(dataset_url,
                                                        filesystem=petastorm_compat.filesystem(dataset_url))
    dataset = pq.ParquetDataset(path, filesystem=filesystem, validate_schema=False)
    pieces = load_row_groups(dataset)
    if len(pieces) < num_proc:
        raise DermsparkError(
            f"the dataset has {len(pieces)} row group(s), fewer than the {num_proc} processes "
            "that each need a shard: re-ingest with a larger --num-files or lower --num-proc"
        )
    per_shard = [0] * num_proc
    for index, piece in enumerate(pieces):
        with filesystem.open(piece.path) as handle:
            splits = pq.ParquetFile(handle).read_row_group(piece.row_group, columns=["split"])
        per_shard[index % num_proc] += splits.column("split").to_pylist().count("train")
    if min(per_shard) == 0:
        raise DermsparkError(
            f"training rows per process would be {per_shard}: a process with none cannot train. "
            "Re-ingest with fewer --num-files (bigger row groups) or lower --num-proc"
        )
    return per_shard


def run_train(spark: SparkSession, settings: TrainSettings) -> dict:
    require(settings)
    if settings.cycle_time_ms <= 0:
        raise DermsparkError(f"--cycle-time-ms must be more than 0, got {settings.cycle_time_ms}")
    if not 0.0 < settings.target_sensitivity <= 1.0:
        raise DermsparkError(f"--target-sensitivity must be within (0, 1], got {settings.target_sensitivity}")
    try:
        recipe = get_recipe(settings.model)
        check_options(settings.model, settings.model_options)
    except ValueError as error:
        raise DermsparkError(str(error)) from None
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
    prepare_output(output_url, settings.mode)
    dataset_manifest = _read_dataset_manifest(dataset_root)
    dataset_url = join(dataset_root, _pick_dataset(dataset_manifest, recipe.input_size, settings.model))
    split_counts = {split: sum(counts.values()) for split, counts in dataset_manifest["per_split"].items()}
    for needed in ("train", "test"):
        if not split_counts.get(needed):
            raise DermsparkError(f"the dataset's {needed} split is empty: ingest more images")
    per_shard = _check_shards(dataset_url, settings.num_proc)
    log.info("train: training rows per process %s", per_shard)

    classes = dataset_manifest["classes"]
    train_counts = dataset_manifest["per_split"]["train"]
    majority = max(train_counts, key=train_counts.get)
    plan = make_plan(recipe, settings, classes, dataset_manifest["per_split"], settings.num_proc)
    plan["rows_per_shard"] = per_shard
    plan["cache_training"] = cache_training(per_shard, recipe.input_size, settings.cache_mb)
    run_id = settings.run_id or datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S")
    store_url = join(store_root, run_id)
    resolved = {**json.loads(to_json(settings)), "run_id": run_id, "store": store_url, "plan": plan,
                # The server used, without any password in its URI.
                "mlflow_uri": shown(mlflow_uri) if mlflow_uri else None}
    model_options = {"num_classes": len(classes), **weights_option, **settings.model_options}
    bundle_manifest = {
        "model_name": settings.model,
        "classes": classes,
        "input_size": list(recipe.input_size),
        # How the training pixels were made; scoring decodes new images the same way.
        "preprocessing": {
            **dataset_manifest.get("decode", {"resample": "lanczos", "aspect": "stretch"}),
            "pixels": f"uint8 RGB 0..255 in; {recipe.preprocessing} inside the model",
        },
        "positive_class": recipe.positive_class,
        "training_settings": resolved,
        "dataset": dataset_fingerprint(dataset_root, dataset_url, dataset_manifest),
        "library_versions": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tensorboard_url = (join(to_url(settings.tensorboard_dir), run_id) if settings.tensorboard_dir
                       else join(store_url, "tensorboard"))
    mlflow_run = None
    if mlflow_uri:
        mlflow_run = open_or_fail(mlflow_uri, settings.experiment or settings.model, run_id, resolved,
                                  {"dermspark.model": settings.model, "dermspark.dataset": dataset_url})
    config = {
        "dataset_url": dataset_url,
        "model": settings.model,
        "model_options": model_options,
        "classes": classes,
        "majority_label": classes.index(majority),
        "positive_class": recipe.positive_class if recipe.positive_class in classes else None,
        "plan": plan,
        "seed": settings.seed,
        "target_sensitivity": settings.target_sensitivity,
        "store_url": store_url,
        "bundle_manifest": bundle_manifest,
        "tensorboard_url": tensorboard_url,
        "mlflow": mlflow_run.for_ranks() if mlflow_run else None,
    }
    import horovod.spark

    log.info("train: %s on %d Horovod processes, stages %s, run id %s", settings.model, settings.num_proc,
             [stage["epochs"] for stage in plan["stages"]], run_id)
    with staged_output(output_url) as staging:
        # Rank 0 writes the bundle into the staging folder; it appears with the rest or not at all.
        try:
            results = horovod.spark.run(
                _entry_point(),
                args=({**config, "output_url": staging},),
                num_proc=settings.num_proc,
                start_timeout=settings.start_timeout,
                use_gloo=True,
                verbose=0,
                env=_rank_environment(settings),
                # Workers start on executors: with a shipped environment, its Python, not the driver's.
                executable=spark.sparkContext.getConf().get("spark.pyspark.python", None),
            )
        except BaseException as error:
            if mlflow_run:
                mlflow_run.fail()
            # Horovod ends every rank when one exits: a lost worker or executor, or a failure whose
            # traceback the ranks' output above shows. The checkpoints stay; say how to go on.
            if not isinstance(error, RuntimeError) or "exited with non-zero status" not in str(error):
                raise
            raise DermsparkError(
                f"a training process ended before training did (a worker or executor lost, or an error in "
                f"the output above); rerun with --run-id {run_id} to resume from the last checkpoint"
            ) from None
        metrics = results[0]
        storage.write_text(join(staging, "metrics.json"), json.dumps(metrics, indent=2))
        storage.write_text(join(staging, "settings.json"), json.dumps(resolved, indent=2, sort_keys=True))
        _write_report(staging, metrics, classes, settings, dataset_url, run_id)
        storage.copy_tree(tensorboard_url, join(staging, "tensorboard"))
    result = {**metrics, "output": output_url, "bundle": join(output_url, "model"), "run_id": run_id,
              "tensorboard": storage.local_path(tensorboard_url) or tensorboard_url}
    if mlflow_run:
        result.update(mlflow_run.complete(output_url, metrics, settings.register))
    return result


def _tracking(settings: TrainSettings) -> str | None:
    uri = tracking_uri(settings.mlflow_uri)
    if settings.register:
        check_name(settings.register, "--register")
        if not uri:
            raise DermsparkError("--register needs a model registry: give --mlflow-uri or MLFLOW_TRACKING_URI")
    if uri:
        check_server(uri)
    return uri


# What the ranks take from the driver's environment. Horovod lays the environment it is given
# over each executor's own; the driver's whole environment would put this machine's paths
# (PYTHONPATH, the virtual environment) before the executor's, which name the Python (with
# dermspark installed) that Spark shipped there. S3 credentials reach the ranks as executor variables
# (dermspark.session).
RANK_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS", *QUIET)


def _rank_environment(settings: TrainSettings) -> dict:
    return {**{name: os.environ[name] for name in RANK_VARIABLES if name in os.environ},
            "HOROVOD_CYCLE_TIME": str(settings.cycle_time_ms)}


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


def dataset_fingerprint(root: str, url: str, manifest: dict) -> dict:
    """Which dataset, and which version of it: the manifest's content without its timestamp
    (a rerun of ingest on the same input gives the same rows and the same fingerprint)."""
    content = {key: value for key, value in manifest.items() if key not in ("created_at", "output")}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return {"url": url, "root": root, "manifest_sha256": digest, "created_at": manifest.get("created_at"),
            "per_split": manifest["per_split"]}


def _write_report(staging: str, metrics: dict, classes: list[str], settings: TrainSettings,
                  dataset_url: str, run_id: str) -> None:
    notes = [f"model `{settings.model}`, run `{run_id}`, {settings.num_proc} Horovod processes",
             f"dataset `{dataset_url}`; split by lesion, so no lesion is in two splits"]
    if metrics.get("resumed_from"):
        notes.append(f"resumed from {metrics['resumed_from']}")
    for stop in metrics.get("stopped_early", []):
        notes.append(f"stage {stop['stage'] + 1} stopped early after epoch {stop['epoch']}")
    for end in metrics.get("ended_on", []):
        notes.append(f"stage {end['stage'] + 1} kept epoch {end['epoch']} ({end['by']}); the figures are that epoch's")
    write_evaluation(staging, metrics, classes, settings.model, notes, metrics.get("stage_ends", [])[:-1])


def _entry_point():
    from dermspark.train.worker import train

    return train
