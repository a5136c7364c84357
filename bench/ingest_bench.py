"""Ingest throughput: the Spark job on local[2] against a single-process loop over the same files.

The loop does per image what the job does (Pillow decode with JPEG draft, LANCZOS resize, PNG
encode through Petastorm's codec), so the ratio measures what Spark adds: parallelism, minus its
overhead (JVM, task scheduling, matching, split, Parquet writing, manifest and report). The same
loop run as two processes side by side, each on half the files, gives the ceiling this machine
allows any parallel version of that work. This machine's speed drifts between minutes, so the job
and the loop take turns --repeats times and the median of the paired ratios counts.

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


def loop(files: list[str], size: tuple[int, int]) -> float:
    """Seconds to read, decode, resize and encode every file, one after the other."""
    from dermspark.images import decode_image
    from dermspark.schema import make_schema

    field = make_schema(*size).fields["image"]
    started = time.perf_counter()
    for path in files:
        with open(path, "rb") as handle:
            array = decode_image(handle.read(), *size)
        field.codec.encode(field, array)
    return time.perf_counter() - started


def two_loops(pool: ProcessPoolExecutor, files: list[str], size: tuple[int, int]) -> float:
    """Images per second of two loops side by side, no Spark: what two cores give this work."""
    started = time.perf_counter()
    list(pool.map(loop, [files[0::2], files[1::2]], [size, size]))
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
    parser.add_argument("--repeats", type=int, default=3, help="turns of the job and the loop; medians")
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
    rows = []
    with tempfile.TemporaryDirectory() as work, ProcessPoolExecutor(2) as pool:
        for name, archive in archives.items():
            files = sorted(glob.glob(os.path.join(archive, "*", "*.jpg")))
            for size in args.sizes:
                if size == args.sizes[0] and name.startswith("ham10000-200"):
                    job(spark, archive, size, work)  # warm-up: JVM, Python workers, imports
                    two_loops(pool, files[:20], parse_size(size))
                pairs = []
                for repeat in range(args.repeats):
                    job_rate, written = job(spark, archive, size, work)
                    loop_rate = len(files) / loop(files, parse_size(size))
                    pairs.append((job_rate, loop_rate))
                    print(f"{name} {size} repeat {repeat + 1}: job {job_rate:.1f} img/s, loop {loop_rate:.1f} img/s "
                          f"({written} written)", flush=True)
                ceiling = two_loops(pool, files, parse_size(size)) / statistics.median(pair[1] for pair in pairs)
                rows.append((name, size, statistics.median(pair[0] for pair in pairs),
                             statistics.median(pair[1] for pair in pairs),
                             statistics.median(job_rate / loop_rate for job_rate, loop_rate in pairs), ceiling))
    spark.stop()
    print(f"\nmedians of {args.repeats} turns; target: job / loop at least 1.6")
    print(f"{'archive':36} {'size':>8} {'job img/s':>10} {'loop img/s':>11} {'job/loop':>9} {'2 loops/loop':>13}")
    for name, size, job_rate, loop_rate, ratio, ceiling in rows:
        print(f"{name:36} {size:>8} {job_rate:10.1f} {loop_rate:11.1f} {ratio:9.2f} {ceiling:13.2f}")


if __name__ == "__main__":
    main()
