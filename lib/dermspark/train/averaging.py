"""An exponential moving average of the weights, kept beside them (as timm's ModelEma and
TensorFlow's ExponentialMovingAverage do). Imported inside the worker.

Training steps move the model's own weights; after each step the average moves towards them.
For each epoch's validation and checkpoint the average is swapped into the model, and swapped
out again once the epoch is saved, so the epoch's figures, the best epoch and the bundle all
concern the average while training goes on from its own weights. Keras' `use_ema` with an
overwrite frequency instead restarts training from the average each time, which holds back
every epoch's progress (at 0.998 and 132 steps an epoch, to about an eighth).
"""

import tensorflow as tf


class _Slots(tf.Module):
    """What a checkpoint keeps: the average, the training weights while the average is in the
    model, and how many steps the average has taken."""

    def __init__(self, variables):
        super().__init__(name="weight_average")
        self.average = [tf.Variable(v, trainable=False) for v in variables]
        self.training = [tf.Variable(v, trainable=False) for v in variables]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)


class WeightAverage:
    def __init__(self, model, momentum: float):
        if not 0 < momentum < 1:
            raise ValueError(f"momentum must lie between 0 and 1, not {momentum}")
        # Every variable, BatchNorm's moving statistics too (as timm averages buffers).
        self.variables = list(model.weights)
        self.momentum = momentum
        self.slots = _Slots(self.variables)
        self.swapped = False
        # One traced step after every batch.
        self.update = tf.function(self._step)

    def _step(self):
        updates = self.slots.updates + 1
        # Early on the average follows the weights closely (TensorFlow's num_updates rule), so it
        # does not hold on to the random start for the first hundreds of steps.
        step = tf.cast(updates, tf.float32)
        momentum = tf.minimum(self.momentum, (1.0 + step) / (10.0 + step))
        first = tf.equal(updates, 1)
        for average, variable in zip(self.slots.average, self.variables, strict=True):
            value = tf.cast(variable, tf.float32)
            new = tf.where(first, value, momentum * tf.cast(average, tf.float32) + (1.0 - momentum) * value)
            average.assign(tf.cast(new, average.dtype))
        self.slots.updates.assign(updates)

    def swap_in(self) -> None:
        """The average into the model, the training weights aside; twice is once."""
        if self.swapped:
            return
        for kept, average, variable in zip(self.slots.training, self.slots.average, self.variables, strict=True):
            kept.assign(variable)
            variable.assign(average)
        self.swapped = True

    def swap_out(self) -> None:
        if not self.swapped:
            return
        for kept, variable in zip(self.slots.training, self.variables, strict=True):
            variable.assign(kept)
        self.swapped = False

    def resumed(self) -> None:
        """After restoring a checkpoint saved mid-epoch-end: its model slot holds the average, so
        the training weights come back from the slots."""
        self.swapped = True
        self.swap_out()

    def callbacks(self):
        """Callbacks to go before the epoch's checkpoint callback (stepping the average, and
        swapping it in for validation, or at the epoch's end when there is none) and after it
        (the training weights back for the next epoch)."""
        average = self

        class Step(tf.keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                average.update()

            def on_test_begin(self, logs=None):
                average.swap_in()

            def on_epoch_end(self, epoch, logs=None):
                average.swap_in()

        class Back(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                average.swap_out()

        return [Step()], [Back()]
