"""The training job: one model (train.driver), or one per lesion-grouped fold with --cv K or
--fold i (train.cv). Both start from the same checks, made once before anything slow."""

from pyspark.sql import SparkSession

from dermspark.commit import prepare_output
from dermspark.results import CVResult, TrainResult
from dermspark.settings.train import TrainSettings
from dermspark.storage import join
from dermspark.train.cv import run_cv
from dermspark.train.driver import Target, train_model
from dermspark.train.setup import check_setup, new_run_id


def run_train(spark: SparkSession, settings: TrainSettings) -> TrainResult | CVResult:
    setup = check_setup(spark, settings)
    if settings.cv or settings.fold is not None:
        return run_cv(spark, settings, setup)
    prepare_output(setup.output_url, settings.mode, "train")
    run_id = settings.run_id or new_run_id()
    return train_model(
        spark,
        settings,
        setup,
        Target(run_id, setup.output_url, join(setup.store_root, run_id), setup.dataset_manifest.per_split),
    )
