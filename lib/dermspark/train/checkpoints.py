"""Checkpoints in any store fsspec reaches (file://, hdfs://, s3a:// as s3://), written every
epoch by rank 0, so that a rerun with the same run id resumes exactly where the last complete
epoch left off. What to keep and when to stop is decided in state.py; this module only saves
and restores.

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

    def save_epoch(self, state, outcome, model, optimizer, average=None) -> None:
        """After an epoch, rank 0 only: its model and optimizer (and a weight average's slots),
        its model again when it is the stage's best so far, then the state that names them;
        then what no resume needs."""
        import tensorflow as tf

        extra = {"weight_average": average} if average is not None else {}
        self.save(state.last, tf.train.Checkpoint(model=model, optimizer=optimizer, **extra))
        if state.best == f"best-{state.last}":  # this epoch is the stage's best so far
            self.save(state.best, tf.train.Checkpoint(model=model))
        self.write_state(state.to_dict())
        for tag in outcome.stale:
            self.delete(tag)
