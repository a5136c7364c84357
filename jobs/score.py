"""spark-submit entry point: batch-score a folder of images with a trained bundle."""

import argparse
import os
import sys

from dermspark.runtime import configure_logging, job_errors, print_lines, quiet_spark
from dermspark.score.job import run_score
from dermspark.settings import ScoreSettings, resolve
from pyspark.sql import SparkSession

DEFAULT_SETTINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conf", "score.yaml")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="spark-submit.sh score", description=__doc__)
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="YAML job settings")
    parser.add_argument("--model", help="bundle folder written by the train job")
    parser.add_argument("--input", help="folder of images, searched recursively")
    parser.add_argument("--output", help="output folder for predictions and summary")
    parser.add_argument("--glob", help="file name filter, e.g. '*.jpg' (default: every file)")
    parser.add_argument("--batch-size", type=int, dest="batch_size", help="images per model call")
    parser.add_argument("--mode", choices=["error", "overwrite"], help="when the output exists")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging()
    overrides = {key: value for key, value in vars(args).items() if key != "settings"}
    with job_errors("score"):
        settings = resolve(ScoreSettings, args.settings, overrides)
        spark = SparkSession.builder.appName("dermspark-score").getOrCreate()
        quiet_spark(spark)
        try:
            result = run_score(spark, settings)
        finally:
            spark.stop()
    print_lines(
        f"score done: {result['predictions']}",
        {
            "inputs": result["inputs"],
            "scored": result["scored"],
            "errors": f"{result['errors']} {result['by_reason']}",
        },
    )


if __name__ == "__main__":
    main()
