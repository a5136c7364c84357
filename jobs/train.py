"""spark-submit entry point: train a registered model with Horovod on Spark."""

import os

from dermspark.cli import parse
from dermspark.report import cross_validation
from dermspark.report.evaluation import interval_text
from dermspark.runtime import configure_logging, job_errors, print_lines, quiet_spark
from dermspark.session import spark_session
from dermspark.settings import TrainSettings, resolve
from dermspark.train.job import run_train


def main(argv=None):
    settings_file, overrides = parse(TrainSettings, __file__, __doc__, argv)
    configure_logging()
    with job_errors("train"):
        settings = resolve(TrainSettings, settings_file, overrides)
        spark = spark_session("dermspark-train")
        quiet_spark(spark)
        try:
            result = run_train(spark, settings)
        finally:
            spark.stop()
    if "folds" in result:
        _print_cv(result)
        return
    test = result["test"]
    print_lines(
        f"train done: bundle {result['bundle']}",
        {
            "test images": test["count"],
            "test accuracy": f"{test['accuracy']:.4f}",
            "test balanced accuracy": f"{test['balanced_accuracy']:.4f}{interval_text(test)}",
            "test macro AUC": "n/a" if test["macro_auc"] is None else f"{test['macro_auc']:.4f}",
            "majority-class baseline accuracy": f"{test['baseline_accuracy']:.4f}",
            "report": os.path.join(result["output"], "report.md"),
            "run id (rerun with it to resume)": result["run_id"],
            "tensorboard": f"tensorboard --logdir {result['tensorboard']}",
            **({"mlflow run": result["mlflow_run_id"]} if "mlflow_run_id" in result else {}),
            **({"registered model": result["registered"]} if "registered" in result else {}),
        },
    )


def _print_cv(result: dict) -> None:
    lines = {"folds trained now": ", ".join(map(str, result["trained"])) or "none (all written earlier)",
             "run id (rerun with it to resume)": result["run_id"]}
    if "waiting_for" in result:
        print_lines(f"train done: cross-validation folds in {result['output']}",
                    {**lines, "folds still to train": ", ".join(map(str, result["waiting_for"]))})
        return
    summary = result["summary"]

    def spread(key: str) -> str:
        return cross_validation.spread(summary, key, digits=4)

    print_lines(f"train done: {result['folds']}-fold cross-validation in {result['output']}", {
        **lines,
        "test balanced accuracy (mean ± sd over folds)": spread("balanced_accuracy"),
        "test accuracy (mean ± sd)": spread("accuracy"),
        "test macro AUC (mean ± sd)": spread("macro_auc"),
        "pooled out-of-fold balanced accuracy": f"{summary['pooled']['balanced_accuracy']:.4f}",
        "report": os.path.join(result["output"], "cv_report.md"),
    })


if __name__ == "__main__":
    main()
