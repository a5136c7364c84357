"""Checkpoints in any store fsspec reaches (file://, hdfs://, s3a:// as s3://), and the callback
that writes them every epoch and decides early stopping, so that a rerun with the same run id
resumes exactly where the last complete epoch left off.

A checkpoint is TensorFlow's (model and optimizer variables, so Adam's moments and a decaying
learning rate's step count survive); `state.json` says which one is current and is written
last, so a run killed mid-write resumes from the previous, complete one.
"""

import json
import os
import posixpath
import shutil
import tempfile


class CheckpointStore:
    def __init__(self, url: str):
        from dermspark.storage import open_url

        self.fs, self.root = open_url(url)
        self.url = url
        # Restored checkpoints stay on local disk until close(): TensorFlow restores variables
        # created later (an augmentation layer's random generator, at its first training step)
        # from the files when they appear, not at read().
        self.local = tempfile.mkdtemp(prefix="dermspark-restore-")

    def close(self) -> None:
        shutil.rmtree(self.local, ignore_errors=True)

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def state(self) -> dict | None:
        path = self._path("state.json")
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as handle:
            return json.load(handle)

    def save(self, tag: str, checkpoint) -> None:
        """Uploads checkpoint (a tf.train.Checkpoint) as `tag`; rank 0 only."""
        with tempfile.TemporaryDirectory() as local:
            checkpoint.write(os.path.join(local, "ckpt"))
            self.fs.makedirs(self._path(tag), exist_ok=True)
            for name in os.listdir(local):
                self.fs.put_file(os.path.join(local, name), self._path(tag, name))

    def write_state(self, state: dict) -> None:
        self.fs.makedirs(self.root, exist_ok=True)
        temporary = self._path("state.json.tmp")
        with self.fs.open(temporary, "w") as handle:
            json.dump(state, handle, indent=2)
        self.fs.mv(temporary, self._path("state.json"))

    def restore(self, tag: str, checkpoint) -> None:
        local = os.path.join(self.local, tag)
        if not os.path.isdir(local):
            os.makedirs(local)
            for path in self.fs.ls(self._path(tag), detail=False):
                self.fs.get_file(path, os.path.join(local, posixpath.basename(path)))
        # expect_partial: a model-only checkpoint object ignores the saved optimizer.
        checkpoint.read(os.path.join(local, "ckpt")).expect_partial()

    def delete(self, tag: str) -> None:
        if tag and self.fs.exists(self._path(tag)):
            self.fs.rm(self._path(tag), recursive=True)


def make_callback(store: CheckpointStore, state: dict, model, optimizer, stage: dict, rank: int):
    """After each epoch: the history, a checkpoint (rank 0), early stopping on the stage's
    monitored value (validation loss unless it says otherwise). Every rank decides the same way:
    validation figures are averaged across ranks before this runs."""
    import tensorflow as tf

    from dermspark.train.plan import MONITORS

    monitor = stage.get("monitor", "val_loss")
    beats = MONITORS[monitor]

    class Checkpointing(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            # Callbacks log the rate only in the epochs they act on; read it from the optimizer
            # instead, so the series has one value an epoch whatever schedule ran.
            logs = {key: value for key, value in logs.items() if key != "lr" and not key.startswith("learning_rate")}
            logs["learning_rate"] = tf.keras.backend.get_value(optimizer.learning_rate)
            for key, value in logs.items():
                state["history"].setdefault(key, []).append(float(value))
            stale = [state["last"], state["best"]]
            state["epoch"] = epoch + 1
            state["last"] = f"stage{state['stage']}-epoch{epoch + 1}"
            value = logs.get(monitor)
            improved = value is not None and (state["best_value"] is None or beats(value, state["best_value"]))
            state["wait"] = 0 if improved else state["wait"] + 1
            if improved:
                state["best_value"] = float(value)
                if stage["restore_best"]:
                    state["best"] = f"best-stage{state['stage']}-epoch{epoch + 1}"
            stop = stage_finished(state, stage)
            if stop:
                state["stopped_early"].append({"stage": state["stage"], "epoch": epoch + 1})
            if rank == 0:
                store.save(state["last"], tf.train.Checkpoint(model=model, optimizer=optimizer))
                if improved and stage["restore_best"]:
                    store.save(state["best"], tf.train.Checkpoint(model=model))
                store.write_state(state)
                for tag in stale:
                    if tag not in (state["last"], state["best"], state["start_from"]):
                        store.delete(tag)
            if stop:
                self.model.stop_training = True

    return Checkpointing()


def stage_finished(state: dict, stage: dict) -> bool:
    """Early stopping's test: the monitored value has not improved for `patience` epochs."""
    patience = stage["early_stopping_patience"]
    return bool(patience) and state["best_value"] is not None and state["wait"] >= patience
