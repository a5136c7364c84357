"""Ingest throughput: the Spark job on local[2] against a single-process loop over the same files.

The loop does per image what the job does (Pillow decode with JPEG draft, LANCZOS resize, PNG
encode through Petastorm's codec), so the ratio measures what Spark adds: parallelism, minus its
overhead (JVM, Arrow transfer, matching, split, Parquet writing, manifest and report).

    .venv/bin/python bench/ingest_bench.py [--data ../shared/data] [--sizes 75x100 299x299]
"""

import argparse
import glob
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))


def loop(files: list[str], size: tuple[int, int]) -> float:
    from dermspark.images import decode_image
    from dermspark.schema import make_schema

    field = make_schema(*size).fields["image"]
    started = time.perf_counter()
    for path in files:
        with open(path, "rb") as handle:
            array = decode_image(handle.read(), *size)
        field.codec.encode(field, array)
    return len(files) / (time.perf_counter() - started)


def job(spark, archive: str, size: str, work: str) -> tuple[float, int]:
    from dermspark.ingest.pipeline import run_ingest
    from dermspark.settings import IngestSettings

    output = os.path.join(work, f"out-{size}")
    started = time.perf_counter()
    result = run_ingest(spark, IngestSettings(input=archive, output=output, sizes=size))
    elapsed = time.perf_counter() - started
    shutil.rmtree(output)
    return result["written"] / elapsed, result["written"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("DERMSPARK_DATA", os.path.join(ROOT, "..", "shared", "data")))
    parser.add_argument("--sizes", nargs="+", default=["75x100", "299x299"])
    args = parser.parse_args()
    if not os.path.isdir(args.data):
        sys.exit(f"no data folder at {args.data}: pass --data or set DERMSPARK_DATA")

    from dermspark.images import parse_size
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]").appName("ingest-bench")
        .config("spark.ui.enabled", "false").config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", "8").getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    archives = {
        "ham10000-200x150 (10,015 images)": os.path.join(args.data, "ham10000-200x150"),
        "ham10000-600x450 (250 images)": os.path.join(args.data, "ham10000-600x450"),
    }
    print(f"{'archive':36} {'size':>8} {'job img/s':>10} {'loop img/s':>11} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as work:
        for name, archive in archives.items():
            files = sorted(glob.glob(os.path.join(archive, "*", "*.jpg")))
            for size in args.sizes:
                if size == args.sizes[0] and name.startswith("ham10000-200"):
                    job(spark, archive, size, work)  # warm-up: JVM, Python workers, imports
                job_rate, written = job(spark, archive, size, work)
                loop_rate = loop(files, parse_size(size))
                print(f"{name:36} {size:>8} {job_rate:10.1f} {loop_rate:11.1f} {job_rate / loop_rate:6.2f}",
                      flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
