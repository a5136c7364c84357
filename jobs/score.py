"""spark-submit entry point: batch-score a folder of images with a trained bundle."""

import argparse
import os
import sys

from dermspark.runtime import configure_logging, job_errors, print_lines, quiet_spark
from dermspark.score.job import run_score
from dermspark.session import spark_session
from dermspark.settings import ScoreSettings, resolve

DEFAULT_SETTINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conf", "score.yaml")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="spark-submit.sh score", description=__doc__)
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="YAML job settings")
    parser.add_argument("--model", help="bundle written by the train job: a folder or a URL (s3://, hdfs://)")
    parser.add_argument("--input", help="image folder (recursive), Parquet table, or ingested dataset")
    parser.add_argument("--input-format", dest="input_format", choices=["auto", "files", "parquet", "petastorm"])
    parser.add_argument("--output", help="predictions table and run records; grows run by run")
    parser.add_argument("--glob", help="file name filter for folders, e.g. '*.jpg' (default: every file)")
    parser.add_argument("--path-column", dest="path_column", help="Parquet inputs: the column of file paths")
    parser.add_argument("--content-column", dest="content_column", help="Parquet inputs: a column of image bytes")
    parser.add_argument("--split", help="ingested datasets: score this split only")
    parser.add_argument("--batch-size", type=int, dest="batch_size", help="images per model call")
    parser.add_argument("--top-k", type=int, dest="top_k", help="labels kept per image, most likely first")
    parser.add_argument("--melanoma-threshold", type=float, dest="melanoma_threshold",
                        help="melanoma probability at or above which melanoma_flag is set")
    parser.add_argument("--incremental", action="store_true", default=None,
                        help="skip files this model version already scored")
    parser.add_argument("--labels", help="HAM10000 metadata or ISIC 2019 ground truth: adds a metrics report")
    parser.add_argument("--model-version", dest="model_version", help="default: training run id and bundle hash")
    parser.add_argument("--mode", choices=["error", "overwrite"],
                        help="error: refuse to rescore a model version already in the output")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging()
    overrides = {key: value for key, value in vars(args).items() if key != "settings"}
    with job_errors("score"):
        settings = resolve(ScoreSettings, args.settings, overrides)
        spark = spark_session("dermspark-score")
        quiet_spark(spark)
        try:
            result = run_score(spark, settings)
        finally:
            spark.stop()
    print_lines(
        f"score done: run {result['run_id']}, records in {result['run']}",
        {
            "inputs": result["inputs"],
            "scored": result["scored"],
            "errors": f"{result['errors']} {result['by_reason']}",
            "skipped": result["skipped"],
            "predictions": result["predictions"] or "(nothing new)",
        },
    )

if __name__ == "__main__":
    main()
