"""What each stage compiles with: the optimizer, its learning rate (warmup, scaling by the
number of processes, cosine or exponential decay) and the loss. Imported inside the worker."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dermspark.train.worker_config import StagePlan

WARMUP_EPOCHS = 3


def warmup_epochs(index: int, stage: "StagePlan") -> int:
    """The first stage reaches its scaled rate over 3 epochs, unless the recipe decays it."""
    return min(WARMUP_EPOCHS, stage.epochs) if index == 0 and not stage.decay_steps else 0


def learning_rate(stage: "StagePlan", processes: int, steps_per_epoch: int, warmup: int = 0):
    """A float, or Keras' schedule of the rate by optimizer step."""
    import tensorflow as tf

    # Linear scaling with the number of processes (Horovod's advice), reached by warmup.
    rate = stage.learning_rate * processes
    if stage.cosine:
        # Keras' own: linear warmup from one process's rate to the scaled rate, then half a
        # cosine down to 0 at the stage's last step. A function of the optimizer's step count,
        # which checkpoints keep, so a resumed run picks the rate up where it was.
        rate = tf.keras.optimizers.schedules.CosineDecay(
            stage.learning_rate if warmup else rate,
            alpha=0.0,
            decay_steps=max(1, (stage.epochs - warmup) * steps_per_epoch),
            warmup_target=rate if warmup else None,
            warmup_steps=warmup * steps_per_epoch,
        )
    elif stage.decay_steps:
        rate = tf.keras.optimizers.schedules.ExponentialDecay(rate, stage.decay_steps, stage.decay_rate, staircase=True)
    return rate


def make_optimizer(stage: "StagePlan", processes: int, steps_per_epoch: int, warmup: int = 0):
    import tensorflow as tf

    rate = learning_rate(stage, processes, steps_per_epoch, warmup)
    if stage.optimizer == "adam":
        return tf.keras.optimizers.Adam(learning_rate=rate)
    if stage.optimizer == "sgd_nesterov":
        return tf.keras.optimizers.SGD(learning_rate=rate, momentum=stage.momentum, nesterov=True)
    raise ValueError(f"unknown optimizer {stage.optimizer!r}")


def make_loss(label_smoothing: float, classes: int):
    """Sparse cross-entropy; with smoothing, the categorical one on one-hot labels (Keras 2.15's
    sparse loss has none). Keras applies class weights to either alike."""
    import tensorflow as tf

    if not label_smoothing:
        return "sparse_categorical_crossentropy"

    def smoothed_crossentropy(labels, probabilities):
        one_hot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), classes)
        return tf.keras.losses.categorical_crossentropy(one_hot, probabilities, label_smoothing=label_smoothing)

    return smoothed_crossentropy
