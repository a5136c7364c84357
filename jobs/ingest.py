"""spark-submit entry point: an image archive in, a Petastorm dataset with manifest out."""

from dermspark.cli import parse
from dermspark.ingest.pipeline import run_ingest
from dermspark.runtime import configure_logging, job_errors, print_lines, quiet_spark
from dermspark.session import spark_session
from dermspark.settings import IngestSettings, resolve


def main(argv=None):
    settings_file, overrides = parse(IngestSettings, __file__, __doc__, argv)
    configure_logging()
    with job_errors("ingest"):
        settings = resolve(IngestSettings, settings_file, overrides)
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
