"""Balanced accuracy as a Keras metric, so every epoch's logs carry the ISIC metric beside plain
accuracy, and a stage can be ended on (or stopped by) its best validation balanced accuracy.

It accumulates a confusion matrix over the batches of an epoch and returns the mean recall of
the classes present, which is scikit-learn's balanced_accuracy_score over the same predictions.
Imported by the training worker only, so TensorFlow is imported here at the top.
"""

import tensorflow as tf


class BalancedAccuracy(tf.keras.metrics.Metric):
    """Unweighted, like Keras' accuracy: class weights shape the loss, not what is measured."""

    def __init__(self, num_classes: int, name: str = "balanced_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.matrix = self.add_weight(
            name="matrix", shape=(num_classes, num_classes), initializer="zeros", dtype=tf.float64
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        predicted = tf.argmax(tf.reshape(y_pred, [-1, self.num_classes]), axis=-1, output_type=tf.int32)
        self.matrix.assign_add(tf.math.confusion_matrix(labels, predicted, self.num_classes, dtype=tf.float64))

    def result(self):
        support = tf.reduce_sum(self.matrix, axis=1)
        recall = tf.math.divide_no_nan(tf.linalg.diag_part(self.matrix), support)
        present = tf.reduce_sum(tf.cast(support > 0, tf.float64))
        return tf.cast(tf.math.divide_no_nan(tf.reduce_sum(recall), present), self.dtype)

    def reset_state(self):
        self.matrix.assign(tf.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
