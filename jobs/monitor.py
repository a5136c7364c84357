"""spark-submit entry point: watch a predictions table over time (volume, class mix, confidence,
flags, drift from the bundle's held-out predictions) in a report a person reads."""

from dermspark.cli import parse
from dermspark.monitor.job import run_monitor
from dermspark.runtime import configure_logging, job_errors, print_lines, quiet_spark
from dermspark.session import spark_session
from dermspark.settings import MonitorSettings, resolve


def main(argv=None):
    settings_file, overrides = parse(MonitorSettings, __file__, __doc__, argv)
    configure_logging()
    with job_errors("monitor"):
        settings = resolve(MonitorSettings, settings_file, overrides)
        spark = spark_session("dermspark-monitor")
        quiet_spark(spark)
        try:
            result = run_monitor(spark, settings)
        finally:
            spark.stop()
    print_lines(
        f"monitor done: {result['output']}/report.md",
        {
            "runs": f"{result['runs']} ({result['new_runs']} read this time)",
            "model versions": len(result["model_versions"]),
            "flagged periods": result["flagged"] if result["reference"] else "(no --model: not judged)",
            **({"mlflow run": result["mlflow_run_id"]} if "mlflow_run_id" in result else {}),
        },
    )


if __name__ == "__main__":
    main()
