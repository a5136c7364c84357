"""spark-submit entry point: batch-score a folder of images with a trained bundle."""

from dermspark.cli import parse
from dermspark.runtime import configure_logging, job_errors, print_lines, quiet_spark
from dermspark.score.job import run_score
from dermspark.session import spark_session
from dermspark.settings import ScoreSettings, resolve


def main(argv=None):
    settings_file, overrides = parse(ScoreSettings, __file__, __doc__, argv)
    configure_logging()
    with job_errors("score"):
        settings = resolve(ScoreSettings, settings_file, overrides)
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
            "read them": result["read_with"],
        },
    )


if __name__ == "__main__":
    main()
