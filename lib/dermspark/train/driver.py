"""Training one model (train.setup made the checks): the plan -> horovod.spark.run -> metrics,
report and bundle, staged as a whole."""

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.cluster import rank_threads
from dermspark.commit import mark, staged_output
from dermspark.manifests import BundleManifest
from dermspark.report.evaluation import write_evaluation
from dermspark.results import TrainResult
from dermspark.settings.train import TrainSettings
from dermspark.settings_core import to_dict
from dermspark.storage import join, to_url
from dermspark.tracking.server import QUIET, shown
from dermspark.train.dataset import check_shards, dataset_fingerprint, decode_of
from dermspark.train.mlflow_run import open_or_fail
from dermspark.train.plan import cache_training, make_plan
from dermspark.train.setup import Setup, library_versions
from dermspark.train.worker_config import TrainPlan, WorkerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    """A cross-validation fold: which one of how many, the folds each split takes, and the
    cross-validation's own run (dermspark's, and MLflow's to nest under)."""

    index: int
    of: int
    splits: dict[str, list[int]]  # {split: [folds]}
    run_id: str
    mlflow_parent: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Target:
    """One model to train: its run id, where it goes, and what it trains, validates and tests on."""

    run_id: str
    output_url: str
    store_url: str  # its checkpoint store
    per_split: dict  # {split: {class: images}}
    fold: Fold | None = None  # None: the dataset's own split


def train_model(spark: SparkSession, settings: TrainSettings, setup: Setup, target: Target) -> TrainResult:
    """One model, trained on Horovod into target.output_url (staged: all of it or nothing)."""
    plan = _plan(spark, settings, setup, target)
    mlflow_uri = setup.mlflow_uri
    resolved = {
        **to_dict(settings),
        "run_id": target.run_id,
        "store": target.store_url,
        "plan": plan.to_dict(),
        "mlflow_uri": shown(mlflow_uri) if mlflow_uri else None,  # without a password
        "fold": target.fold.to_dict() if target.fold else None,
    }
    mlflow_run = _open_run(settings, setup, target, resolved) if mlflow_uri else None
    config = _worker_config(settings, setup, target, plan, _bundle_manifest(settings, setup, resolved), mlflow_run)
    log.info(
        "train: %s on %d Horovod processes, stages %s, run id %s",
        settings.model,
        settings.num_proc,
        [stage.epochs for stage in plan.stages],
        target.run_id,
    )
    # A fold's output is new (cv.py skips finished folds): another job's fold stops this one.
    with staged_output(target.output_url, "error" if target.fold else settings.mode) as staging:
        # Rank 0 writes the bundle into the staging folder; it appears with the rest or not at all.
        metrics = _run_ranks(
            spark,
            settings,
            dataclasses.replace(config, output_url=staging),
            mlflow_run,
            target.fold.run_id if target.fold else target.run_id,
        )
        storage.write_text(join(staging, "metrics.json"), json.dumps(metrics, indent=2))
        storage.write_text(join(staging, "settings.json"), json.dumps(resolved, indent=2, sort_keys=True))
        _write_report(staging, metrics, settings, setup, target, config.bundle_manifest.test_time_augmentation)
        storage.copy_tree(config.tensorboard_url, join(staging, "tensorboard"))
        mark(staging, "train")
    logged = mlflow_run.complete(target.output_url, metrics, settings.register) if mlflow_run else {}
    return TrainResult(
        target.output_url,
        join(target.output_url, "model"),
        target.run_id,
        storage.local_path(config.tensorboard_url) or config.tensorboard_url,
        metrics,
        **logged,
    )


def _plan(spark: SparkSession, settings: TrainSettings, setup: Setup, target: Target) -> TrainPlan:
    """The checks on the splits and shards, then the plan the ranks follow."""
    split_counts = {split: sum(counts.values()) for split, counts in target.per_split.items()}
    for needed in ("train", "test"):
        if not split_counts.get(needed):
            raise DermsparkError(f"the dataset's {needed} split is empty: ingest more images")
    per_shard = check_shards(setup.dataset_url, settings.num_proc, target.fold.splits if target.fold else None)
    log.info("train: training rows per process %s", per_shard)
    plan = make_plan(setup.recipe, settings, setup.dataset_manifest.classes, target.per_split, settings.num_proc)
    return dataclasses.replace(
        plan,
        rows_per_shard=per_shard,
        cache_training=cache_training(per_shard, setup.recipe.input_size, settings.cache_mb),
        threads_per_rank=rank_threads(spark, settings.num_proc),
    )


def _bundle_manifest(settings: TrainSettings, setup: Setup, resolved: dict) -> BundleManifest:
    """The bundle's manifest as far as the driver knows it; rank 0 adds what training finds."""
    recipe, dataset_manifest = setup.recipe, setup.dataset_manifest
    return BundleManifest(
        model_name=settings.model,
        classes=dataset_manifest.classes,
        input_size=list(recipe.input_size),
        # How the training pixels were made; scoring decodes new images the same way.
        preprocessing={
            **decode_of(dataset_manifest),
            "pixels": f"uint8 RGB 0..255 in; {recipe.preprocessing} inside the model",
        },
        positive_class=recipe.positive_class,
        test_time_augmentation=settings.tta or recipe.tta,
        parent={key: value for key, value in setup.parent.items() if key != "weights"} if setup.parent else None,
        training_settings=resolved,
        dataset=dataset_fingerprint(setup.dataset_root, setup.dataset_url, dataset_manifest),
        library_versions=library_versions(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _open_run(settings: TrainSettings, setup: Setup, target: Target, resolved: dict):
    tags = {
        "dermspark.model": settings.model,
        "dermspark.dataset": setup.dataset_url,
        **({"dermspark.parent": setup.parent["url"]} if setup.parent else {}),
    }
    fold = target.fold
    if fold:
        tags.update({"dermspark.cv_folds": str(fold.of), "dermspark.fold": str(fold.index)})
        if fold.mlflow_parent:  # MLflow's own nesting: the folds under the cross-validation
            tags["mlflow.parentRunId"] = fold.mlflow_parent
    return open_or_fail(setup.mlflow_uri, settings.experiment or settings.model, target.run_id, resolved, tags)


def _worker_config(
    settings: TrainSettings, setup: Setup, target: Target, plan: TrainPlan, bundle_manifest: BundleManifest, mlflow_run
) -> WorkerConfig:
    classes = setup.dataset_manifest.classes
    train_counts = target.per_split["train"]
    recipe, parent = setup.recipe, setup.parent
    return WorkerConfig(
        dataset_url=setup.dataset_url,
        folds=target.fold.splits if target.fold else None,
        model=settings.model,
        model_options={"num_classes": len(classes), **setup.weights_option, **settings.model_options},
        classes=classes,
        majority_label=classes.index(max(train_counts, key=train_counts.get)),
        positive_class=recipe.positive_class if recipe.positive_class in classes else None,
        plan=plan,
        seed=settings.seed,
        target_sensitivity=settings.target_sensitivity,
        calibration=settings.calibration,
        review={
            "rate": settings.review_rate,
            "method": settings.review_method,
            "ood_check": to_url(settings.ood_check) if settings.ood_check else None,
        },
        parent={"weights": parent["weights"], "class_map": parent["class_map"]} if parent else None,
        externals=[{"name": external["name"], "url": external["url"]} for external in setup.externals],
        store_url=target.store_url,
        bundle_manifest=bundle_manifest,
        tensorboard_url=(
            join(to_url(settings.tensorboard_dir), target.run_id)
            if settings.tensorboard_dir
            else join(target.store_url, "tensorboard")
        ),
        mlflow=mlflow_run.for_ranks() if mlflow_run else None,
    )


def _run_ranks(
    spark: SparkSession, settings: TrainSettings, config: WorkerConfig, mlflow_run, resume_with: str
) -> dict:
    """horovod.spark.run over the ranks; rank 0's metrics. A rank that ends early is one line
    saying how to resume (`--run-id resume_with`)."""
    import horovod.spark

    try:
        return horovod.spark.run(
            _entry_point(),
            args=(config,),
            num_proc=settings.num_proc,
            start_timeout=settings.start_timeout,
            use_gloo=True,
            verbose=0,
            env=_rank_environment(settings),
            # Workers start on executors: with a shipped environment, its Python, not the driver's.
            executable=spark.sparkContext.getConf().get("spark.pyspark.python", None),
        )[0]
    except BaseException as error:
        if mlflow_run:
            mlflow_run.fail()
        # Horovod ends every rank when one exits: a lost worker or executor, or a failure whose
        # traceback the ranks' output above shows. The checkpoints stay; say how to go on.
        if not isinstance(error, RuntimeError) or "exited with non-zero status" not in str(error):
            raise
        raise DermsparkError(
            f"a training process ended before training did (a worker or executor lost, or an error in "
            f"the output above); rerun with --run-id {resume_with} to resume from the last checkpoint"
        ) from None


# What the ranks take from the driver's environment. Horovod lays the environment it is given
# over each executor's own; the driver's whole environment would put this machine's paths
# (PYTHONPATH, the virtual environment) before the executor's, which name the Python (with
# dermspark installed) that Spark shipped there. S3 credentials reach the ranks as executor variables
# (dermspark.session).
RANK_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS", *QUIET)


def _rank_environment(settings: TrainSettings) -> dict:
    return {
        **{name: os.environ[name] for name in RANK_VARIABLES if name in os.environ},
        "HOROVOD_CYCLE_TIME": str(settings.cycle_time_ms),
    }


def _write_report(staging: str, metrics: dict, settings: TrainSettings, setup: Setup, target: Target, tta: str) -> None:
    fold = target.fold
    notes = [
        f"model `{settings.model}`, run `{target.run_id}`, {settings.num_proc} Horovod processes",
        f"dataset `{setup.dataset_url}`; split by lesion, so no lesion is in two splits",
    ]
    if fold:
        notes.append(
            f"cross-validation fold {fold.index} of {fold.of}: test is fold {fold.index}, "
            f"validation fold {fold.splits['validation'][0]}, training the other folds"
        )
    if tta == "flips":
        notes.append(
            "test-time flips: these figures are of the mean over each image's four flips, as scoring "
            "and serving predict; the training history's validation figures are of one pass"
        )
    if metrics.get("resumed_from"):
        notes.append(f"resumed from {metrics['resumed_from']}")
    for stop in metrics.get("stopped_early", []):
        notes.append(f"stage {stop['stage'] + 1} stopped early after epoch {stop['epoch']}")
    for end in metrics.get("ended_on", []):
        notes.append(f"stage {end['stage'] + 1} kept epoch {end['epoch']} ({end['by']}); the figures are that epoch's")
    write_evaluation(
        staging, metrics, setup.dataset_manifest.classes, settings.model, notes, metrics.get("stage_ends", [])[:-1]
    )


def _entry_point():
    from dermspark.train.worker import train

    return train
