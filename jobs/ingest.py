"""spark-submit entry point: an image archive in, a Petastorm dataset with manifest out."""

import argparse
import os
import sys

from dermspark.ingest.pipeline import run_ingest
from dermspark.runtime import configure_logging, job_errors, print_lines, quiet_spark
from dermspark.session import spark_session
from dermspark.settings import IngestSettings, resolve

DEFAULT_SETTINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conf", "ingest.yaml")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="spark-submit.sh ingest", description=__doc__)
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="YAML job settings")
    parser.add_argument("--source", help="archive layout: ham10000, isic2019, folders")
    parser.add_argument("--label-space", dest="label_space",
                        help="classes to train on: ham10000 (7), isic2019 (8), melanoma (2)")
    parser.add_argument("--input", help="archive folder (any path Spark reaches)")
    parser.add_argument("--output", help="output folder or URL (s3://, hdfs://) for the dataset, manifest and rejects")
    parser.add_argument("--sizes", help="HEIGHTxWIDTH list, one dataset each: 75x100,299x299")
    parser.add_argument("--resample", help="lanczos (default), bicubic, bilinear, box, nearest")
    parser.add_argument("--aspect", choices=["stretch", "crop"], help="stretch (as the papers) or crop")
    parser.add_argument("--split", help="train/validation/test ratios, e.g. 80/10/10")
    parser.add_argument("--seed", type=int, help="split seed")
    parser.add_argument("--mode", choices=["error", "overwrite"], help="when the output exists")
    parser.add_argument("--num-files", type=int, dest="num_files", help="Parquet files to write")
    parser.add_argument("--max-reject-fraction", type=float, dest="max_reject_fraction",
                        help="fail when more inputs than this are rejected (default 1.0: off)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging()
    overrides = {key: value for key, value in vars(args).items() if key != "settings"}
    with job_errors("ingest"):
        settings = resolve(IngestSettings, args.settings, overrides)
        spark = spark_session("dermspark-ingest")
        quiet_spark(spark)
        try:
            result = run_ingest(spark, settings)
        finally:
            spark.stop()
    print_lines(
        f"ingest done: {result['output']}",
        {
            "inputs": result["inputs"],
            "written": result["written"],
            "rejected": f"{result['rejected']} {result['by_reason']}",
            "per split": {split: sum(c.values()) for split, c in result["per_split"].items()},
        },
    )


if __name__ == "__main__":
    main()
