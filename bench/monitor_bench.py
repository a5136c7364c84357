"""The monitor job on the scale bench's largest table: the real 200x150 HAM10000 set linked four
times (40,060 images, scale_bench.build_archive) scored in eight runs of 5,007 or 5,008 images
(a model version each: the copies share their content, which an incremental run would skip)
by an untrained benbrahim_cnn bundle (score_bench.make_bundle; the figures are not the point),
given as its reference the first run's predictions, then the monitor:
its first run (every run read), a rerun with nothing new, and a rerun after a ninth run. Prints
the wall time of each (target: the first under a minute on 2 cores) and the Spark input it read.

    .venv/bin/python bench/monitor_bench.py [--data ../shared/data] [--work /tmp/dermspark-monitor]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time


def add_reference(bundle: str, scores: str) -> None:
    """The bundle's reference made of the first run's predictions (an untrained bundle has no
    validation split): enough for the monitor to compute drift, which is what is timed."""
    import json

    import numpy as np
    import pandas as pd
    from dermspark.report.drift import reference
    from dermspark.storage import local_path

    manifest_path = os.path.join(local_path(bundle), "manifest.json")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    rows = pd.read_parquet(os.path.join(scores, "predictions"))
    rows = rows[rows["error"].isna()]
    probabilities = np.stack([rows[f"prob_{name}"].to_numpy() for name in manifest["classes"]], axis=1)
    manifest["reference"] = reference(probabilities[:5000], manifest["classes"], "validation")
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("DERMSPARK_DATA", "../shared/data"))
    parser.add_argument("--work")
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from dermspark.monitor.job import run_monitor
    from dermspark.score.job import run_score
    from dermspark.settings.monitor import MonitorSettings
    from dermspark.settings.score import ScoreSettings
    from pyspark.sql import SparkSession
    from scale_bench import build_archive
    from score_bench import make_bundle

    work = args.work or tempfile.mkdtemp(prefix="dermspark-monitor-")
    archive = os.path.join(work, "archive-4n")
    if not os.path.isdir(archive):
        build_archive(os.path.join(args.data, "ham10000-200x150"), archive, 4)
    images = sorted(os.listdir(os.path.join(archive, "images")))
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("monitor-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    bundle, scores = make_bundle(work, "benbrahim_cnn"), os.path.join(work, "scores")
    chunk = -(-len(images) // args.runs)
    for number in range(args.runs + 1):
        folder = os.path.join(work, f"run-{number}")
        if number == args.runs:
            chunk, number = 500, 0  # the ninth run: 500 images again, scored after the first monitor
        if not os.path.isdir(folder):
            os.makedirs(folder)
            for name in images[number * chunk : (number + 1) * chunk]:
                os.symlink(os.path.join(archive, "images", name), os.path.join(folder, name))
    for number in range(args.runs):
        if not os.path.exists(os.path.join(work, f"scored-{number}")):
            # A version per run: the archive's copies share their content, which an incremental
            # run of one version would skip.
            run_score(
                spark,
                ScoreSettings(
                    model=bundle,
                    input=os.path.join(work, f"run-{number}"),
                    output=scores,
                    links="follow",
                    mode="overwrite",
                    model_version=f"bench-{number}",
                ),
            )
            open(os.path.join(work, f"scored-{number}"), "w").close()
    add_reference(bundle, scores)
    report = os.path.join(work, "report")
    shutil.rmtree(report, ignore_errors=True)
    settings = MonitorSettings(predictions=scores, output=report, model=bundle)

    def timed(what: str) -> None:
        started = time.perf_counter()
        result = run_monitor(spark, settings)
        rows = sum(entry["rows"] for entry in result.report["periods"]["run"])
        print(
            f"{what}: {time.perf_counter() - started:.1f} s, "
            f"{result.report['runs']} runs ({result.report['new_runs']} read), "
            f"{rows:,} rows",
            flush=True,
        )

    timed("first monitor run")
    timed("rerun, nothing new")
    run_score(
        spark,
        ScoreSettings(
            model=bundle,
            input=os.path.join(work, f"run-{args.runs}"),
            output=scores,
            links="follow",
            mode="overwrite",
            model_version="second-version",
        ),
    )
    timed("rerun after one more run")
    spark.stop()


if __name__ == "__main__":
    main()
