"""The function every Horovod rank runs inside a Spark task.

As in Horovod's Spark examples: imports inside the function (it is pickled to executors),
hvd.init() first, and side effects (evaluation, bundle, logs) on rank 0 only.
"""


def train(config: dict) -> dict | None:
    import horovod.tensorflow.keras as hvd

    hvd.init()

    import contextlib
    import math
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from petastorm import make_reader
    from petastorm.etl.dataset_metadata import get_schema_from_dataset_url
    from petastorm.predicates import in_lambda
    from petastorm.tf_utils import make_petastorm_dataset

    from dermspark import petastorm_compat
    from dermspark.bundle import save_bundle
    from dermspark.evaluate import classification_metrics
    from dermspark.models import create_model

    # Without it, the finite read of the test split below can end early (see the module).
    petastorm_compat.apply()
    rank, size = hvd.rank(), hvd.size()
    tf.keras.utils.set_random_seed(config["seed"] + rank)
    batch_size = config["batch_size"]
    split_counts = config["split_counts"]

    schema = get_schema_from_dataset_url(config["dataset_url"])
    # Field objects, not names: Petastorm reads names as regular expressions.
    fields = [schema.fields["image"], schema.fields["label"], schema.fields["split"]]

    def reader(split: str, sharded: bool, epochs):
        return make_reader(
            config["dataset_url"],
            schema_fields=fields,
            predicate=in_lambda(["split"], lambda value, wanted=split: value == wanted),
            cur_shard=rank if sharded else None,
            shard_count=size if sharded else None,
            num_epochs=epochs,
            shuffle_row_groups=sharded,
            seed=config["seed"] + rank,
            reader_pool_type="thread",
            workers_count=2,
        )

    def pairs(petastorm_reader):
        return make_petastorm_dataset(petastorm_reader).map(lambda row: (row.image, row.label))

    model = create_model(config["model"], **config["model_options"])
    # Linear scaling with the number of processes, reached by warmup so early steps stay stable.
    scaled_rate = config["learning_rate"] * size
    optimizer = hvd.DistributedOptimizer(tf.keras.optimizers.Adam(learning_rate=scaled_rate))
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        experimental_run_tf_function=False,
    )
    # Every rank runs the same number of steps, so no rank waits at an epoch's end for another.
    steps_per_epoch = max(1, math.ceil(split_counts["train"] / (batch_size * size)))
    validation_steps = max(1, math.ceil(split_counts.get("validation", 0) / batch_size))
    callbacks = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),
        hvd.callbacks.LearningRateWarmupCallback(
            initial_lr=scaled_rate, warmup_epochs=min(3, config["epochs"]), verbose=0
        ),
    ]
    with contextlib.ExitStack() as readers:
        train_reader = readers.enter_context(reader("train", sharded=True, epochs=None))
        training = pairs(train_reader).shuffle(4 * batch_size).batch(batch_size)
        validation = {}
        if split_counts.get("validation", 0):
            # Not sharded: a shard can hold no validation row at all, and an endless reader
            # over nothing never yields. Every rank sees the same small split.
            validation_reader = readers.enter_context(reader("validation", sharded=False, epochs=None))
            validation = {
                "validation_data": pairs(validation_reader).batch(batch_size),
                "validation_steps": validation_steps,
            }
        history = model.fit(
            training,
            steps_per_epoch=steps_per_epoch,
            epochs=config["epochs"],
            callbacks=callbacks,
            verbose=2 if rank == 0 else 0,
            **validation,
        )

    if rank != 0:
        return None

    labels, probabilities = [], []
    with reader("test", sharded=False, epochs=1) as test_reader:
        for images, batch_labels in pairs(test_reader).batch(batch_size):
            probabilities.append(model.predict_on_batch(images))
            labels.append(batch_labels.numpy())
    classes = config["classes"]
    test = classification_metrics(
        np.concatenate(labels), np.concatenate(probabilities), classes, config["majority_label"]
    )
    metrics = {
        "test": test,
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
    }
    manifest = {**config["bundle_manifest"], "metrics": {"test": test}}
    save_bundle(config["output_url"] + "/model", model, manifest)
    return metrics
