"""Training throughput: Horovod on Spark against plain single-process Keras `fit` and against
Horovod's own `KerasEstimator`, same model, same data, same machine, in one run.

Both sides train on the train split of one ingested dataset: Horovod reads it through Petastorm
(each rank its shard), plain Keras holds it in memory as numpy arrays. Images per second count
training steps only (validation excluded), median over the epochs after the first (which
builds the graph). The ratios are medians over repeats of the job's rate over each peer's.

The estimator is what a user of Horovod's Spark API would write: the training split's pixels as a
plain Parquet table (one flat float array and a one-hot label per image), `KerasEstimator` with
the same model, batch size, epochs and process count, its shard cached in memory when the job's is
(`inmemory_cache_all`). --no-estimator leaves it out.

    .venv/bin/python bench/train_bench.py [--model benbrahim_cnn] [--images 2000] [--epochs 4]
        [--repeats 3] [--cache-mb 0]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))


def plain_keras(
    dataset_url: str, model_name: str, classes: int, batch_size: int, epochs: int, learning_rate: float
) -> tuple[float, int]:
    import tensorflow as tf
    from dermspark.models import create_model, get_recipe
    from dermspark.train.inputs import EpochTimer, Inputs

    images, labels, _ = Inputs(dataset_url, rank=0, size=1, seed=0).load("train", batch_size)
    options = {"num_classes": classes}
    if get_recipe(model_name).pretrained:
        options["weights"] = "none"
    model = create_model(model_name, **options)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    history: dict = {}
    model.fit(images, labels, batch_size=batch_size, epochs=epochs, callbacks=[EpochTimer(history)], verbose=0)
    return len(images) / statistics.median(history["train_seconds"][1:]), len(images)


def horovod_estimator(
    spark,
    dataset_url: str,
    model_name: str,
    classes: int,
    batch_size: int,
    epochs: int,
    learning_rate: float,
    num_proc: int,
    cached: bool,
    work: str,
) -> float:
    """Training images per second of horovod.spark.keras.KerasEstimator (epochs after the first)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf
    from dermspark.models import create_model, get_recipe
    from dermspark.train.inputs import Inputs
    from horovod.spark.common.store import LocalStore
    from horovod.spark.keras import KerasEstimator

    class LegacyParquetStore(LocalStore):
        """Horovod 0.28.1 reads its Parquet metadata through pyarrow's legacy ParquetDataset
        (`schema.to_arrow_schema()`), which pyarrow 14 gives only when asked: without this one
        override the estimator stops at its first step on this stack."""

        def get_parquet_dataset(self, path):
            import pyarrow.parquet as pq

            return pq.ParquetDataset(self.get_localized_path(path), filesystem=self.fs, use_legacy_dataset=True)

    images, labels, _ = Inputs(dataset_url, rank=0, size=1, seed=0).load("train", batch_size)
    table = os.path.join(work, "pixels.parquet")
    if not os.path.exists(table):

        def floats(rows: np.ndarray) -> pa.Array:
            return pa.FixedSizeListArray.from_arrays(pa.array(rows.astype(np.float32).ravel()), rows[0].size).cast(
                pa.list_(pa.float32())
            )

        pq.write_table(
            pa.table(
                {
                    "features": floats(images.reshape(len(images), -1)),
                    "label": floats(np.eye(classes, dtype=np.float32)[labels]),
                }
            ),
            table,
        )
    options = {"num_classes": classes}
    if get_recipe(model_name).pretrained:
        options["weights"] = "none"
    times = os.path.join(work, "estimator-epochs.txt")
    if os.path.exists(times):
        os.remove(times)

    class EpochSeconds(tf.keras.callbacks.Callback):
        """Appends each epoch's training seconds (validation excluded) to a file on rank 0."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            import horovod.tensorflow.keras as hvd

            if hvd.rank() == 0:
                with open(times, "a") as handle:
                    handle.write(f"{time.perf_counter() - self.started}\n")

    estimator = KerasEstimator(
        num_proc=num_proc,
        store=LegacyParquetStore(os.path.join(work, "estimator-store")),
        model=create_model(model_name, **options),
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        feature_cols=["features"],
        label_cols=["label"],
        batch_size=batch_size,
        epochs=epochs,
        callbacks=[EpochSeconds()],
        verbose=0,
        inmemory_cache_all=cached,
        random_seed=0,
    )
    # Horovod coalesces the table to 10 partitions a process and shards row groups over the
    # processes, so the table must have at least that many partitions (one pyarrow file has one).
    estimator.fit(spark.read.parquet(table).repartition(10 * num_proc))
    with open(times) as handle:
        seconds = [float(line) for line in handle]
    return len(images) / statistics.median(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="benbrahim_cnn")
    parser.add_argument("--images", type=int, default=2000, help="synthetic archive size")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=0, help="per process; 0: the recipe's")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, taken in turns")
    parser.add_argument("--cache-mb", type=int, default=2048, help="the job's --cache-mb; 0 streams")
    parser.add_argument("--no-estimator", action="store_true", help="leave Horovod's KerasEstimator out")
    args = parser.parse_args()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from dermspark.ingest.pipeline import run_ingest
    from dermspark.models import get_recipe
    from dermspark.settings.ingest import IngestSettings
    from dermspark.settings.train import TrainSettings
    from dermspark.synthetic import make_synthetic_ham10000
    from dermspark.train.job import run_train
    from pyspark.sql import SparkSession

    recipe = get_recipe(args.model)
    size = f"{recipe.input_size[0]}x{recipe.input_size[1]}"
    batch_size = args.batch_size or recipe.batch_size
    spark = (
        SparkSession.builder.master(f"local[{args.num_proc}]")
        .appName("train-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "8g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    horovod_rates, keras_rates, estimator_rates = [], [], []
    with tempfile.TemporaryDirectory() as work:
        make_synthetic_ham10000(os.path.join(work, "archive"), images=args.images, seed=5)
        label_space = "melanoma" if recipe.positive_class == "melanoma" else "ham10000"
        manifest = run_ingest(
            spark,
            IngestSettings(
                input=os.path.join(work, "archive"),
                output=os.path.join(work, "dataset"),
                sizes=size,
                label_space=label_space,
            ),
        ).manifest
        dataset_url = "file://" + os.path.join(work, "dataset", f"images_{size}")
        # This machine's speed drifts between minutes, so the two sides take turns and each
        # repeat's ratio compares runs made moments apart.
        for repeat in range(args.repeats):
            output = os.path.join(work, f"model-{repeat}")
            started = time.perf_counter()
            result = run_train(
                spark,
                TrainSettings(
                    dataset=os.path.join(work, "dataset"),
                    output=output,
                    model=args.model,
                    epochs=args.epochs,
                    fine_tune_epochs=0,
                    batch_size=batch_size,
                    num_proc=args.num_proc,
                    imbalance="none",
                    weights="none" if recipe.pretrained else None,
                    learning_rate=recipe.stages[0].learning_rate,
                    cache_mb=args.cache_mb,
                ),
            )
            job_seconds = time.perf_counter() - started
            steps_images = _images_per_epoch(os.path.join(output, "settings.json"))
            horovod_rates.append(steps_images / statistics.median(result.metrics["history"]["train_seconds"][1:]))
            keras_rate, train_images = plain_keras(
                dataset_url, args.model, len(manifest.classes), batch_size, args.epochs, recipe.stages[0].learning_rate
            )
            keras_rates.append(keras_rate)
            if not args.no_estimator:
                estimator_rates.append(
                    horovod_estimator(
                        spark,
                        dataset_url,
                        args.model,
                        len(manifest.classes),
                        batch_size,
                        args.epochs,
                        recipe.stages[0].learning_rate,
                        args.num_proc,
                        args.cache_mb > 0,
                        work,
                    )
                )
            print(
                f"repeat {repeat + 1}: Horovod {horovod_rates[-1]:.1f} img/s (whole job {job_seconds:.1f} s), "
                f"plain Keras {keras_rate:.1f} img/s"
                + (f", KerasEstimator {estimator_rates[-1]:.1f} img/s" if estimator_rates else ""),
                flush=True,
            )
    spark.stop()
    horovod_rate, keras_rate = statistics.median(horovod_rates), statistics.median(keras_rates)
    ratio = statistics.median(h / k for h, k in zip(horovod_rates, keras_rates, strict=True))
    print(
        f"model {args.model} at {size}, batch {batch_size} per process, {train_images} training images, "
        f"{args.epochs} epochs, medians of {args.repeats}, training shard cached: {args.cache_mb > 0}"
    )
    print(f"{'Horovod on Spark, ' + str(args.num_proc) + ' processes':36} {horovod_rate:10.1f} img/s")
    print(f"{'plain Keras fit, 1 process':36} {keras_rate:10.1f} img/s")
    print(f"{'ratio (median of the repeats Horovod / plain)':36} {ratio:10.2f}  (target 0.88)")
    if estimator_rates:
        to_estimator = statistics.median(h / e for h, e in zip(horovod_rates, estimator_rates, strict=True))
        print(f"{'Horovod KerasEstimator':36} {statistics.median(estimator_rates):10.1f} img/s")
        print(f"{'ratio (median of the repeats job / estimator)':36} {to_estimator:10.2f}  (target 1.0)")


def _images_per_epoch(settings_path: str) -> int:
    import json

    with open(settings_path) as handle:
        settings = json.load(handle)
    plan = settings["plan"]
    return plan["steps_per_epoch"] * plan["batch_size"] * settings["num_proc"]


if __name__ == "__main__":
    main()
