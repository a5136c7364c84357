"""spark-submit entry point: train a registered model with Horovod on Spark."""

import argparse
import json
import os
import sys

from dermspark.evaluation_report import interval_text
from dermspark.runtime import configure_logging, job_errors, print_lines, quiet_spark
from dermspark.session import spark_session
from dermspark.settings import TrainSettings, resolve
from dermspark.train.driver import run_train

DEFAULT_SETTINGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conf", "train.yaml")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="spark-submit.sh train", description=__doc__)
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="YAML job settings")
    parser.add_argument("--dataset", help="output folder of the ingest job")
    parser.add_argument("--model", help="registered model name, e.g. benbrahim_cnn")
    parser.add_argument("--output", help="output folder or URL (s3://, hdfs://) for the bundle and metrics")
    parser.add_argument("--epochs", type=int, help="first stage; default: the model recipe's")
    parser.add_argument("--fine-tune-epochs", type=int, dest="fine_tune_epochs",
                        help="second stage of two-stage recipes; 0 skips it")
    parser.add_argument("--imbalance", help="none, or any of class_weights,cap,oversample")
    parser.add_argument("--stage-end", dest="stage_end", choices=["best", "last"],
                        help="end each stage on its best epoch (by --monitor) or its last")
    parser.add_argument("--monitor", choices=["val_loss", "val_balanced_accuracy"],
                        help="what the best epoch and early stopping go by; default: val_loss")
    parser.add_argument("--lr-schedule", dest="lr_schedule", choices=["constant", "cosine"],
                        help="learning rate within each stage; default: the recipe's")
    parser.add_argument("--ema", type=float,
                        help="momentum of a moving average of the weights (e.g. 0.99); 0: none")
    parser.add_argument("--cap-per-class", type=int, dest="cap_per_class", help="with --imbalance cap")
    parser.add_argument("--weights", help="none | imagenet (the driver's Keras cache) | a file on the driver | a URL (s3://, hdfs://)")
    parser.add_argument("--run-id", dest="run_id", help="rerun with the same id to resume")
    parser.add_argument("--store", help="checkpoint store URL (default: OUTPUT.checkpoints, on the same storage)")
    parser.add_argument("--batch-size", type=int, dest="batch_size", help="per process")
    parser.add_argument("--learning-rate", type=float, dest="learning_rate", help="before scaling")
    parser.add_argument("--num-proc", type=int, dest="num_proc", help="Horovod processes")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--cache-mb", type=int, dest="cache_mb",
                        help="train from memory after the first epoch when a shard fits; 0 streams")
    parser.add_argument("--cycle-time-ms", type=float, dest="cycle_time_ms",
                        help="Horovod's background cycle in ms (default 10)")
    parser.add_argument("--mode", choices=["error", "overwrite"], help="when the output exists")
    parser.add_argument("--model-options", dest="model_options", type=json.loads,
                        help='JSON overrides for the model builder, e.g. \'{"dropout": 0.3}\'')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging()
    overrides = {key: value for key, value in vars(args).items() if key != "settings"}
    with job_errors("train"):
        settings = resolve(TrainSettings, args.settings, overrides)
        spark = spark_session("dermspark-train")
        quiet_spark(spark)
        try:
            result = run_train(spark, settings)
        finally:
            spark.stop()
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
        },
    )


if __name__ == "__main__":
    main()
