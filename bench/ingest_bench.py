"""Ingest throughput: the Spark job on local[2] against Petastorm's documented pattern and a
single-process loop over the same files.

The loop does per image what the job does (Pillow decode with JPEG draft, LANCZOS resize, PNG
encode through dermspark.png), so the ratio measures what Spark adds: parallelism, minus its
overhead (JVM, task scheduling, matching, split, Parquet writing, manifest and report). The same
loop run as two processes side by side, each on half the files, gives the ceiling this machine
allows any parallel version of that work. The peer is what a user would write from Petastorm's
examples: the metadata read on the driver, an RDD of rows decoded and resized by the same
function, `dict_to_spark_row`, `createDataFrame(...).write.parquet` inside `materialize_dataset`,
PNG through Petastorm's own codec (OpenCV) as its examples do, so the same format and pixels;
it does no accounting, split, rejects or report. This machine's speed drifts between minutes,
so the job, the peer and the loop take turns --repeats times and the medians of the paired
ratios count.

    .venv/bin/python bench/ingest_bench.py [--data ../shared/data] [--sizes 75x100 299x299] [--repeats 3]
"""

import argparse
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))


def loop(files: list[str], size: tuple[int, int], codec: str = "png") -> float:
    """Seconds to read, decode, resize and encode every file, one after the other."""
    from dermspark.images import decode_image
    from dermspark.schema import image_encoder, make_schema

    encode = image_encoder(make_schema(*size, codec))
    started = time.perf_counter()
    for path in files:
        with open(path, "rb") as handle:
            array = decode_image(handle.read(), *size)
        encode(array)
    return time.perf_counter() - started


def two_loops(pool: ProcessPoolExecutor, files: list[str], size: tuple[int, int], codec: str = "png") -> float:
    """Images per second of two loops side by side, no Spark: what two cores give this work."""
    started = time.perf_counter()
    list(pool.map(loop, [files[0::2], files[1::2]], [size, size], [codec, codec]))
    return len(files) / (time.perf_counter() - started)


def job(spark, archive: str, size: str, work: str, codec: str = "png") -> tuple[float, int]:
    from dermspark.ingest.pipeline import run_ingest
    from dermspark.settings.ingest import IngestSettings

    output = os.path.join(work, f"out-{size}")
    started = time.perf_counter()
    result = run_ingest(spark, IngestSettings(input=archive, output=output, sizes=size, codec=codec))
    elapsed = time.perf_counter() - started
    shutil.rmtree(output)
    return result.manifest.written / elapsed, result.manifest.written


def petastorm_pattern(spark, archive: str, size: str, work: str, codec: str = "png") -> float:
    """Images per second of Petastorm's documented way to build a dataset, with the same schema
    and decoder as the job; dict_to_spark_row encodes through the schema's codec."""
    import csv

    from dermspark.images import decode_image, parse_size
    from dermspark.labels import HAM10000_CLASSES
    from dermspark.schema import make_schema
    from petastorm.etl.dataset_metadata import materialize_dataset
    from petastorm.unischema import dict_to_spark_row

    height, width = parse_size(size)
    schema = make_schema(height, width, codec)
    output = "file://" + os.path.join(work, f"peer-{size}")
    started = time.perf_counter()
    with open(os.path.join(archive, "HAM10000_metadata.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    files = {os.path.basename(path)[:-4]: path for path in glob.glob(os.path.join(archive, "*", "*.jpg"))}
    records = [(row, files[row["image_id"]]) for row in rows if row["image_id"] in files]

    def to_row(record):
        row, path = record
        with open(path, "rb") as handle:
            image = decode_image(handle.read(), height, width)
        age = float(row["age"]) if row["age"] else None
        return dict_to_spark_row(
            schema,
            {
                "image_id": row["image_id"],
                "lesion_id": row["lesion_id"],
                "dx": row["dx"],
                "label": HAM10000_CLASSES.index(row["dx"]),
                "split": "train",
                "fold": None,
                "age": age,
                "age_imputed": False,
                "sex": row["sex"],
                "localization": row["localization"],
                "dx_type": row["dx_type"],
                "image": image,
            },
        )

    with materialize_dataset(spark, output, schema, row_group_size_mb=64):
        rdd = spark.sparkContext.parallelize(records, 2 * spark.sparkContext.defaultParallelism).map(to_row)
        spark.createDataFrame(rdd, schema.as_spark_schema()).write.mode("overwrite").parquet(output)
    elapsed = time.perf_counter() - started
    shutil.rmtree(output[len("file://") :])
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("DERMSPARK_DATA", os.path.join(ROOT, "..", "shared", "data")))
    parser.add_argument("--sizes", nargs="+", default=["75x100", "299x299"])
    parser.add_argument("--repeats", type=int, default=3, help="turns of the job and the loop; medians")
    parser.add_argument("--codec", default="png", choices=["png", "raw"], help="ingest --codec, for all three")
    args = parser.parse_args()
    if not os.path.isdir(args.data):
        sys.exit(f"no data folder at {args.data}: pass --data or set DERMSPARK_DATA")

    from dermspark.images import parse_size
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("ingest-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    archives = {
        "ham10000-200x150 (10,015 images)": os.path.join(args.data, "ham10000-200x150"),
        "ham10000-600x450 (250 images)": os.path.join(args.data, "ham10000-600x450"),
    }
    rows = []
    with tempfile.TemporaryDirectory() as work, ProcessPoolExecutor(2) as pool:
        for name, archive in archives.items():
            files = sorted(glob.glob(os.path.join(archive, "*", "*.jpg")))
            for size in args.sizes:
                if size == args.sizes[0] and name.startswith("ham10000-200"):
                    job(spark, archive, size, work, args.codec)  # warm-up: JVM, Python workers, imports
                    petastorm_pattern(spark, archive, size, work, args.codec)
                    two_loops(pool, files[:20], parse_size(size), args.codec)
                turns = []
                for repeat in range(args.repeats):
                    job_rate, written = job(spark, archive, size, work, args.codec)
                    peer_rate = petastorm_pattern(spark, archive, size, work, args.codec)
                    loop_rate = len(files) / loop(files, parse_size(size), args.codec)
                    turns.append((job_rate, peer_rate, loop_rate))
                    print(
                        f"{name} {size} repeat {repeat + 1}: job {job_rate:.1f} img/s, Petastorm pattern "
                        f"{peer_rate:.1f} img/s, loop {loop_rate:.1f} img/s ({written} written)",
                        flush=True,
                    )
                medians = [statistics.median(turn[index] for turn in turns) for index in range(3)]
                ceiling = two_loops(pool, files, parse_size(size), args.codec) / medians[2]
                rows.append(
                    (
                        name,
                        size,
                        *medians,
                        statistics.median(turn[0] / turn[1] for turn in turns),
                        statistics.median(turn[0] / turn[2] for turn in turns),
                        ceiling,
                    )
                )
    spark.stop()
    print(
        f"\n--codec {args.codec}, medians of {args.repeats} turns; "
        "target on the 10,015 images: job / Petastorm pattern at least 1.0"
    )
    print(
        f"{'archive':36} {'size':>8} {'job img/s':>10} {'peer img/s':>11} {'loop img/s':>11} {'job/peer':>9} "
        f"{'job/loop':>9} {'2 loops/loop':>13}"
    )
    for name, size, job_rate, peer_rate, loop_rate, to_peer, to_loop, ceiling in rows:
        print(
            f"{name:36} {size:>8} {job_rate:10.1f} {peer_rate:11.1f} {loop_rate:11.1f} {to_peer:9.2f} "
            f"{to_loop:9.2f} {ceiling:13.2f}"
        )


if __name__ == "__main__":
    main()
