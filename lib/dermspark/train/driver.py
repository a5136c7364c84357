"""The training job: settings -> checks -> horovod.spark.run -> metrics and bundle."""

import json
import logging
import platform
from datetime import UTC, datetime
from importlib import metadata

from pyspark.sql import SparkSession

import dermspark
from dermspark import DermsparkError
from dermspark.models import get_recipe
from dermspark.settings import TrainSettings, require, to_json
from dermspark.storage import HadoopFS, join, prepare_output, staged_output, to_url

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


def _read_dataset_manifest(fs: HadoopFS, dataset_url: str) -> dict:
    manifest_url = join(dataset_url, "manifest.json")
    if not fs.exists(manifest_url):
        raise DermsparkError(
            f"{dataset_url} is not an ingested dataset (no manifest.json): run the ingest job first"
        )
    return json.loads(fs.read_text(manifest_url))


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
    from petastorm.fs_utils import FilesystemResolver

    resolver = FilesystemResolver(dataset_url)
    filesystem = resolver.filesystem()
    dataset = pq.ParquetDataset(resolver.get_dataset_path(), filesystem=filesystem, validate_schema=False)
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
    require(settings, "dataset", "output")
    try:
        recipe = get_recipe(settings.model)
    except ValueError as error:
        raise DermsparkError(str(error)) from None
    fs = HadoopFS(spark)
    dataset_root, output_url = to_url(settings.dataset), to_url(settings.output)
    prepare_output(fs, output_url, settings.mode)
    dataset_manifest = _read_dataset_manifest(fs, dataset_root)
    dataset_url = join(dataset_root, _pick_dataset(dataset_manifest, recipe.input_size, settings.model))
    split_counts = {split: sum(counts.values()) for split, counts in dataset_manifest["per_split"].items()}
    for needed in ("train", "test"):
        if not split_counts.get(needed):
            raise DermsparkError(f"the dataset's {needed} split is empty: ingest more images")
    slots = spark.sparkContext.defaultParallelism
    if settings.num_proc > slots:
        raise DermsparkError(
            f"--num-proc {settings.num_proc} needs {settings.num_proc} task slots at once but the "
            f"cluster offers {slots}: lower --num-proc or add executors/cores"
        )
    per_shard = _check_shards(dataset_url, settings.num_proc)
    log.info("train: training rows per process %s", per_shard)

    classes = dataset_manifest["classes"]
    train_counts = dataset_manifest["per_split"]["train"]
    majority = max(train_counts, key=train_counts.get)
    epochs = settings.epochs or recipe.epochs
    batch_size = settings.batch_size or recipe.batch_size
    learning_rate = settings.learning_rate or recipe.learning_rate
    resolved = {**json.loads(to_json(settings)), "epochs": epochs, "batch_size": batch_size,
                "learning_rate": learning_rate}
    bundle_manifest = {
        "model_name": settings.model,
        "classes": classes,
        "input_size": list(recipe.input_size),
        # How the training pixels were made; scoring decodes new images the same way.
        "preprocessing": {
            **dataset_manifest.get("decode", {"resample": "lanczos", "aspect": "stretch"}),
            "pixels": f"uint8 RGB 0..255 in; {recipe.preprocessing} inside the model",
        },
        "training_settings": resolved,
        "dataset": {"url": dataset_root, "created_at": dataset_manifest["created_at"],
                    "per_split": dataset_manifest["per_split"]},
        "library_versions": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    config = {
        "dataset_url": dataset_url,
        "model": settings.model,
        "model_options": {"num_classes": len(classes), **settings.model_options},
        "classes": classes,
        "majority_label": classes.index(majority),
        "split_counts": split_counts,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": settings.seed,
        "bundle_manifest": bundle_manifest,
    }
    import horovod.spark

    log.info("train: %s on %d Horovod processes, %d epochs", settings.model, settings.num_proc, epochs)
    with staged_output(fs, output_url) as staging:
        # Rank 0 writes the bundle into the staging folder; it appears with the rest or not at all.
        results = horovod.spark.run(
            _entry_point(),
            args=({**config, "output_url": staging},),
            num_proc=settings.num_proc,
            start_timeout=settings.start_timeout,
            use_gloo=True,
            verbose=0,
        )
        metrics = results[0]
        fs.write_text(join(staging, "metrics.json"), json.dumps(metrics, indent=2))
        fs.write_text(join(staging, "settings.json"), json.dumps(resolved, indent=2, sort_keys=True))
    return {**metrics, "output": output_url, "bundle": join(output_url, "model")}


def _entry_point():
    from dermspark.train.worker import train

    return train
