"""Rank 0's live record of each epoch: TensorBoard event files and, when the run is tracked, the
MLflow run's metrics, both written as each epoch ends.

Steps count epochs over the whole run (every stage), so a resumed run and a second stage carry
the curves on. The events are written to a local folder and put on the store (any: a folder,
s3://, hdfs://) through dermspark.storage after every epoch, so the logs there are never more
than an epoch behind. A resumed run adds event files of its own beside the first ones.
"""

import logging
import os
import shutil
import tempfile
import time
from typing import Any

log = logging.getLogger(__name__)


class EpochLog:
    def __init__(self, tensorboard_url: str, mlflow: dict | None):
        self.url = tensorboard_url
        self.scratch = tempfile.mkdtemp(prefix="dermspark-tensorboard-")
        self.writers: dict[str, Any] = {}  # split -> its tf.summary writer
        self.mlflow = mlflow
        self.client: Any = None  # an MlflowClient, made on the first epoch logged
        self.warned = False

    def _writer(self, side: str):
        import tensorflow as tf

        if side not in self.writers:
            self.writers[side] = tf.summary.create_file_writer(os.path.join(self.scratch, side))
        return self.writers[side]

    @staticmethod
    def _last(history: dict) -> tuple[int, dict]:
        step = len(history["loss"]) - 1
        return step, {key: series[-1] for key, series in history.items() if len(series) == step + 1}

    def tensorboard(self, history: dict) -> None:
        """The last value of every series in history (as TrainingState keeps it)."""
        import tensorflow as tf

        step, values = self._last(history)
        for key, value in values.items():
            side, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writer(side).as_default():
                tf.summary.scalar(f"epoch_{name}", value, step=step)
        for writer in self.writers.values():
            writer.flush()
        from dermspark import storage

        storage.put_tree(self.scratch, self.url)

    def mlflow_epoch(self, history: dict) -> None:
        if self.mlflow:
            self._log_mlflow(self.mlflow, *reversed(self._last(history)))

    def _log_mlflow(self, mlflow: dict, values: dict, step: int) -> None:
        """Best effort: an epoch that cannot be logged now is logged by the driver at the end
        (train.mlflow_run.TrainingRun.fill_history); training goes on either way."""
        try:
            from mlflow.entities import Metric

            if self.client is None:
                from dermspark.tracking.server import mlflow_client

                self.client = mlflow_client(mlflow["tracking_uri"])
            now = int(time.time() * 1000)
            self.client.log_batch(
                mlflow["run_id"], metrics=[Metric(key, float(value), now, step) for key, value in values.items()]
            )
        except Exception as error:
            if not self.warned:
                log.warning(
                    "mlflow: epoch %d not logged now (%s); the driver logs it when training ends",
                    step + 1,
                    str(error).splitlines()[0][:200],
                )
                self.warned = True

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
