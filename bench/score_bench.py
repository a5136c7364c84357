"""Scoring throughput: the Spark job on local[2] against plain Keras `predict` in one process,
against Spark's documented `predict_batch_udf` pattern and against the naive UDF that loads the
model for every batch, same bundle, same images, one run.

Every side decodes and resizes each JPEG with the same code (images.decode_image) and predicts in
batches of --batch-size. The job is timed end to end (listing, the UDF, Parquet, summary) after a
warm-up run has started its Python workers. "Cores used" is CPU time over wall time: for plain
Keras its one process's (TensorFlow spreads it over several cores), for the job the whole process
tree's (driver, JVM, Python workers), so idle slots do not count against it; per task slot is
printed too. The naive pattern runs on --naive-images images only: it is slow. This machine's
speed drifts between minutes, so the job, the predict_batch_udf pattern and plain Keras take
turns --repeats times and the medians of the paired ratios count.

    .venv/bin/python bench/score_bench.py [--data ../shared/data] [--model benbrahim_cnn | --bundle DIR] [--images 4000]

--flag-costs instead times the job three ways, in turns: the bundle without a review flag, with
one (fitted here on the first 512 images' features: its cost does not depend on its fit), and
with one and `--explain` (a Grad-CAM PNG per image). The ratios say what each costs.

--dicom instead times the job on the images and on DICOM copies of them (JPEG baseline, made
here by dermspark.dicom_archive), in turns: the ratio is DICOM's rate over the JPEG files' rate.
"""

import argparse
import glob
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))


def make_bundle(folder: str, model_name: str) -> str:
    from dermspark.bundle import save_bundle
    from dermspark.labels import HAM10000_CLASSES
    from dermspark.manifests import BundleManifest
    from dermspark.models import create_model, get_recipe

    recipe = get_recipe(model_name)
    options = {"num_classes": len(HAM10000_CLASSES)}
    if recipe.pretrained:
        options["weights"] = "none"
    manifest = BundleManifest(
        model_name=model_name,
        classes=list(HAM10000_CLASSES),
        input_size=list(recipe.input_size),
        preprocessing={"resample": "lanczos", "aspect": "stretch"},
        training_settings={"run_id": "bench"},
    )
    return save_bundle(os.path.join(folder, "bundle"), create_model(model_name, **options), manifest)


def with_review(bundle_path: str, files: list[str], folder: str) -> str:
    """The bundle again, with a review flag fitted on the first 512 images (labels drawn: the
    flag's cost is the same whatever it learned)."""
    import numpy as np
    from dermspark import review
    from dermspark.bundle import load_bundle, save_bundle
    from dermspark.images import decode_image

    bundle = load_bundle(bundle_path)
    images = np.stack(
        [decode_image(Path(path).read_bytes(), *bundle.input_size, bundle.decode_options) for path in files[:512]]
    )
    raw, features = bundle.infer(images)
    split = review.Split(images, features, raw, np.arange(len(images)) % len(bundle.classes))
    kernel, bias = bundle.model.layers[-1].get_weights()
    reviewer = review.fit("mahalanobis", 0.05, kernel, bias, split, split)
    return save_bundle(os.path.join(folder, "reviewed"), bundle.model, bundle.manifest, reviewer=reviewer)


def flag_costs(job, bundle: str, reviewed: str, repeats: int) -> None:
    """The job without the flag, with it, and with it and --explain, in turns; medians."""
    runs = []
    for repeat in range(repeats):
        rates = (
            job(f"plain-{repeat}", bundle)[0],
            job(f"review-{repeat}", reviewed)[0],
            job(f"explain-{repeat}", reviewed, explain=True)[0],
        )
        runs.append(rates)
        print(
            f"repeat {repeat + 1}: without the flag {rates[0]:.1f} img/s, with it {rates[1]:.1f}, "
            f"with it and --explain {rates[2]:.1f}",
            flush=True,
        )
    median = [statistics.median(run[index] for run in runs) for index in range(3)]
    print(f"job without the review flag      {median[0]:8.1f} img/s")
    print(f"job with the review flag         {median[1]:8.1f} img/s")
    print(f"job with the flag and --explain  {median[2]:8.1f} img/s")
    print(
        f"cost of the flag: {1 - statistics.median(run[1] / run[0] for run in runs):.1%} of throughput "
        "(target under 10%)"
    )
    print(f"cost of --explain on top: {1 - statistics.median(run[2] / run[1] for run in runs):.1%}")


def dicom_cost(job, dicom_folder: str, repeats: int) -> None:
    """The job on the JPEG files and on their DICOM copies, in turns; medians."""
    runs = []
    for repeat in range(repeats):
        rates = (job(f"jpeg-{repeat}")[0], job(f"dicom-{repeat}", folder=dicom_folder)[0])
        runs.append(rates)
        print(f"repeat {repeat + 1}: JPEG files {rates[0]:.1f} img/s, DICOM (JPEG baseline) {rates[1]:.1f}", flush=True)
    print(f"job on JPEG files                {statistics.median(run[0] for run in runs):8.1f} img/s")
    print(f"job on DICOM, JPEG baseline      {statistics.median(run[1] for run in runs):8.1f} img/s")
    print(f"DICOM / JPEG: {statistics.median(run[1] / run[0] for run in runs):.2f} (target at least 0.8)")


def plain_keras(bundle_path: str, files: list[str], batch_size: int) -> tuple[float, float]:
    """Images per second and cores used: read, decode, predict in batches, one process."""
    import numpy as np
    from dermspark.bundle import load_bundle
    from dermspark.images import decode_image

    bundle = load_bundle(bundle_path)
    height, width = bundle.input_size
    bundle.model.predict(np.zeros((batch_size, height, width, 3), np.uint8), verbose=0)  # builds the graph
    cpu, started = time.process_time(), time.perf_counter()
    for start in range(0, len(files), batch_size):
        batch = []
        for path in files[start : start + batch_size]:
            with open(path, "rb") as handle:
                batch.append(decode_image(handle.read(), height, width, bundle.decode_options))
        bundle.model.predict_on_batch(np.stack(batch))
    wall = time.perf_counter() - started
    return len(files) / wall, (time.process_time() - cpu) / wall


def _process_tree_cpu() -> dict:
    """CPU seconds so far of this process and every descendant (the JVM, Spark's Python daemon
    and its workers), keyed by pid and start time so a reused pid is not mistaken for another."""
    import psutil

    seconds = {}
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = process.cpu_times()
            seconds[(process.pid, process.create_time())] = times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return seconds


def cpu_seconds_between(before: dict, after: dict) -> float:
    """A process gone by the end is missed (Spark reuses its Python workers, so few are)."""
    return sum(seconds - before.get(key, 0.0) for key, seconds in after.items())


def naive_job(spark, bundle_path: str, folder: str) -> float:
    """The pattern dermspark avoids: a pandas UDF that loads the bundle for every Arrow batch."""
    from collections.abc import Iterator

    import pandas as pd
    from dermspark.files import list_files, read_local
    from dermspark.score.predict import predict_bytes
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("float")
    def naive(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        from dermspark.bundle import load_bundle

        for paths in batches:
            bundle = load_bundle(bundle_path)
            predictions = predict_bytes(bundle, [read_local(path) for path in paths])
            yield pd.Series([float(p.probabilities.max()) for p in predictions])

    listing = list_files(spark, ["file://" + folder])
    started = time.perf_counter()
    listing.select(naive("path").alias("confidence")).write.format("noop").mode("overwrite").save()
    return listing.count() / (time.perf_counter() - started)


def predict_batch_udf_pattern(spark, bundle_path: str, folder: str, output: str, batch_size: int) -> float:
    """Images per second of Spark's documented deep-learning inference pattern: the binaryFile
    source, a pandas UDF decoding each file with the same decoder into a flat array, then
    `predict_batch_udf` with a `make_predict_fn` that loads the Keras model once per worker and
    calls `model.predict`, as Spark's examples do; the probabilities written to Parquet."""
    import numpy as np
    import pandas as pd
    from dermspark.bundle import MODEL_FILE, load_bundle
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import ArrayType, FloatType

    bundle = load_bundle(bundle_path)
    (height, width), options = bundle.input_size, bundle.decode_options
    model_file = os.path.join(bundle_path, MODEL_FILE)

    @pandas_udf(ArrayType(FloatType()))
    def decode(content: pd.Series) -> pd.Series:
        from dermspark.images import decode_image

        return content.map(lambda data: decode_image(data, height, width, options).astype(np.float32).ravel())

    def make_predict_fn():
        import dermspark.models.layers  # noqa: F401  the custom layers the model may name
        import tensorflow as tf

        model = tf.keras.models.load_model(model_file, compile=False)

        def predict(inputs: np.ndarray) -> np.ndarray:
            return model.predict(inputs, verbose=0)

        return predict

    classify = predict_batch_udf(
        make_predict_fn,
        return_type=ArrayType(FloatType()),
        batch_size=batch_size,
        input_tensor_shapes=[[height, width, 3]],
    )
    started = time.perf_counter()
    images = spark.read.format("binaryFile").option("pathGlobFilter", "*.jpg").load(folder)
    images.select("path", classify(decode("content")).alias("probabilities")).write.mode("overwrite").parquet(output)
    count = spark.read.parquet(output).count()
    elapsed = time.perf_counter() - started
    shutil.rmtree(output)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("DERMSPARK_DATA", os.path.join(ROOT, "..", "shared", "data")))
    parser.add_argument("--model", default="benbrahim_cnn", help="a registered model, untrained")
    parser.add_argument(
        "--bundle",
        help="a trained bundle to use instead of --model (its load time is part of "
        "what the naive pattern pays per batch)",
    )
    parser.add_argument("--images", type=int, default=4000, help="images of the 200x150 set to score")
    parser.add_argument("--naive-images", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the job and of plain Keras; medians")
    parser.add_argument("--flag-costs", action="store_true", help="time the review flag and --explain instead")
    parser.add_argument("--dicom", action="store_true", help="time DICOM copies of the images against the images")
    args = parser.parse_args()
    source = sorted(glob.glob(os.path.join(args.data, "ham10000-200x150", "*", "*.jpg")))[: args.images]
    if not source:
        sys.exit(f"no images under {args.data}/ham10000-200x150: pass --data or set DERMSPARK_DATA")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from dermspark.score.job import run_score
    from dermspark.settings.score import ScoreSettings
    from pyspark.sql import SparkSession

    with tempfile.TemporaryDirectory() as work:
        images, naive_images = os.path.join(work, "images"), os.path.join(work, "naive")
        for folder, files in ((images, source), (naive_images, source[: args.naive_images])):
            os.makedirs(folder)
            for path in files:
                os.symlink(path, os.path.join(folder, os.path.basename(path)))
        bundle = args.bundle or make_bundle(work, args.model)
        spark = (
            SparkSession.builder.master("local[2]")
            .appName("score-bench")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.memory", "2g")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")

        def job(output: str, model: str = bundle, explain: bool = False, folder: str = images) -> tuple[float, float]:
            """Images per second and cores used (CPU seconds of the whole process tree, driver,
            JVM and Python workers, over the wall time)."""
            settings = ScoreSettings(
                model=model,
                input=folder,
                output=os.path.join(work, output),
                batch_size=args.batch_size,
                explain=explain,
                links="follow",
            )
            cpu_before, started = _process_tree_cpu(), time.perf_counter()
            summary = run_score(spark, settings)
            elapsed = time.perf_counter() - started
            cores = cpu_seconds_between(cpu_before, _process_tree_cpu()) / elapsed
            if summary.scored != len(source):
                sys.exit(f"the job scored {summary.scored} of {len(source)} images: {summary.by_reason}")
            shutil.rmtree(os.path.join(work, output))
            return len(source) / elapsed, cores

        if args.dicom:
            from dermspark.dicom_archive import write_copy

            write_copy(source, os.path.join(work, "dicom"), "jpeg_baseline")
            job("warm-up")
            dicom_cost(job, os.path.join(work, "dicom"), args.repeats)
            spark.stop()
            return
        if args.flag_costs:
            reviewed = with_review(bundle, source, work)
            job("warm-up", reviewed, explain=True)
            flag_costs(job, bundle, reviewed, args.repeats)
            spark.stop()
            return

        def peer() -> float:
            return predict_batch_udf_pattern(spark, bundle, images, os.path.join(work, "peer"), args.batch_size)

        job("warm-up")
        peer()
        # The machine's speed drifts between minutes: the sides take turns, and each repeat's
        # ratios compare runs made a minute apart.
        runs = []
        for repeat in range(args.repeats):
            job_rate, job_cores = job(f"scores-{repeat}")
            peer_rate = peer()
            plain_rate, plain_cores = plain_keras(bundle, source, args.batch_size)
            runs.append((job_rate, job_cores, plain_rate, plain_cores, peer_rate))
            print(
                f"repeat {repeat + 1}: job {job_rate:.1f} img/s on {job_cores:.2f} cores, predict_batch_udf "
                f"pattern {peer_rate:.1f} img/s, plain Keras {plain_rate:.1f} img/s on {plain_cores:.2f} cores",
                flush=True,
            )
        naive_rate = naive_job(spark, bundle, naive_images)
        spark.stop()

    driver_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    slots = 2
    job_rate, plain_rate, peer_rate = (statistics.median(run[index] for run in runs) for index in (0, 2, 4))
    to_peer = statistics.median(run[0] / run[4] for run in runs)
    per_core = statistics.median((run[0] / run[1]) / (run[2] / run[3]) for run in runs)
    per_slot = statistics.median((run[0] / slots) / (run[2] / run[3]) for run in runs)
    print(
        f"{args.bundle or args.model}, {len(source)} images of the 200x150 set, batch {args.batch_size}, "
        f"medians of {args.repeats} repeats"
    )
    print(f"job on local[{slots}]                 {job_rate:8.1f} img/s")
    print(f"predict_batch_udf pattern        {peer_rate:8.1f} img/s")
    print(f"plain Keras predict, 1 process   {plain_rate:8.1f} img/s")
    print(f"naive UDF, model loaded per batch {naive_rate:7.1f} img/s  ({min(args.naive_images, len(source))} images)")
    print(f"job / predict_batch_udf pattern: {to_peer:.2f}  (target 2 at 4N, see scale_bench.py)")
    print(f"job per core used / plain per core used: {per_core:.2f}  (target 0.9)")
    print(f"job per task slot / plain per core used: {per_slot:.2f}")
    print(f"job / plain (whole machine):   {job_rate / plain_rate:.2f}")
    print(f"job / naive:                   {job_rate / naive_rate:.2f}")
    print(f"bench process peak memory (driver and plain Keras): {driver_mb:.0f} MB")


if __name__ == "__main__":
    main()
