"""Petastorm readers and tf.data pipelines for one Horovod rank. Imported inside the worker.

Training reads the rank's own shard, endlessly, with classes resampled by the plan's rates;
validation and test are read whole, unsharded, so every rank (validation) and rank 0 (test)
see all of it whatever the row groups hold. A cross-validation fold's splits are sets of the
`fold` column's values instead of values of `split`.
"""

import time

import tensorflow as tf
from petastorm import make_reader
from petastorm.etl.dataset_metadata import get_schema_from_dataset_url
from petastorm.predicates import in_lambda
from petastorm.tf_utils import make_petastorm_dataset


class Inputs:
    def __init__(self, dataset_url: str, rank: int, size: int, seed: int, folds: dict | None = None):
        """folds: {split: [fold, ...]} for a cross-validation fold; None: the `split` column."""
        from dermspark import petastorm_compat

        self.filesystem = petastorm_compat.filesystem(dataset_url)
        schema = get_schema_from_dataset_url(dataset_url, filesystem=self.filesystem)
        self.column = "fold" if folds else "split"
        self.members = {name: set(values) for name, values in folds.items()} if folds else None
        # Field objects, not names: Petastorm reads names as regular expressions.
        self.fields = [schema.fields["image"], schema.fields["label"], schema.fields[self.column]]
        self.lesion_field, self.id_field = schema.fields["lesion_id"], schema.fields["image_id"]
        self.url, self.rank, self.size, self.seed = dataset_url, rank, size, seed

    def reader(self, split: str | None, sharded: bool, epochs, with_lesions: bool = False):
        """split None: every row (an external dataset is all test). with_lesions: the lesion and
        image ids too."""
        wanted = self.members[split] if self.members else {split}
        return make_reader(
            self.url,
            schema_fields=[*self.fields, self.lesion_field, self.id_field] if with_lesions else self.fields,
            predicate=None if split is None else in_lambda([self.column], lambda value, wanted=wanted: value in wanted),
            cur_shard=self.rank if sharded else None,
            shard_count=self.size if sharded else None,
            num_epochs=epochs,
            shuffle_row_groups=sharded,
            seed=self.seed + self.rank,
            reader_pool_type="thread",
            workers_count=2,
            filesystem=self.filesystem,
        )

    @staticmethod
    def pairs(petastorm_reader):
        return make_petastorm_dataset(petastorm_reader).map(lambda row: (row.image, row.label))

    def training(self, petastorm_reader, batch_size: int, rates: list[float], cached_rows: int = 0):
        """cached_rows > 0: the reader makes one pass over a shard of about that many rows, held
        in memory and repeated, and shuffled whole; else an endless reader is shuffled by a window
        of batches. Resampling comes after the cache, so each epoch draws its copies anew."""
        dataset = self.pairs(petastorm_reader)
        shuffle_buffer = 8 * batch_size
        if cached_rows:
            dataset = dataset.cache().repeat()
            shuffle_buffer = max(shuffle_buffer, cached_rows)
        if any(rate != 1.0 for rate in rates):
            rates_tensor = tf.constant(rates, dtype=tf.float32)

            def copies(image, label):
                # floor(rate) copies, plus one more with probability frac(rate): on average
                # `rate` copies, so a capped class thins out and an oversampled one repeats
                # (augmentation layers in the model then show each copy differently).
                rate = tf.gather(rates_tensor, label)
                count = tf.floor(rate) + tf.cast(tf.random.uniform([]) < rate - tf.floor(rate), tf.float32)
                return tf.data.Dataset.from_tensors((image, label)).repeat(tf.cast(count, tf.int64))

            dataset = dataset.flat_map(copies)
        return dataset.shuffle(shuffle_buffer).batch(batch_size).prefetch(2)

    def load(self, split: str | None, batch_size: int):
        """The whole split in memory, as (images, labels, lesion ids, image ids) numpy arrays,
        read once. Validation then sees exactly its images every epoch, which an endless reader
        cut into a fixed number of steps would not; lesion ids group images for the bootstrap
        intervals; image ids name the rows of the test predictions table."""
        import numpy as np

        images, labels, lesions, ids = [], [], [], []
        with self.reader(split, sharded=False, epochs=1, with_lesions=True) as petastorm_reader:
            rows = make_petastorm_dataset(petastorm_reader).map(
                lambda row: (row.image, row.label, row.lesion_id, row.image_id)
            )
            for image_batch, label_batch, lesion_batch, id_batch in rows.batch(batch_size):
                images.append(image_batch.numpy())
                labels.append(label_batch.numpy())
                lesions.append(lesion_batch.numpy())
                ids.append(id_batch.numpy())
        if not images:
            return None
        return np.concatenate(images), np.concatenate(labels), np.concatenate(lesions), np.concatenate(ids)


class EpochTimer(tf.keras.callbacks.Callback):
    """Seconds of training steps per epoch, validation excluded: what throughput is made of."""

    def __init__(self, history: dict):
        super().__init__()
        self.history = history

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.seconds = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        self.seconds = time.perf_counter() - self.started

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.seconds if self.seconds is not None else time.perf_counter() - self.started
        self.history.setdefault("train_seconds", []).append(round(seconds, 3))
