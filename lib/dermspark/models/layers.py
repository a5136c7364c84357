"""Layers of dermspark's own that a saved bundle refers to by name; `load_bundle` imports this
module so Keras can rebuild them."""

import tensorflow as tf
from tensorflow import keras


@keras.saving.register_keras_serializable(package="dermspark")
class ShadesOfGray(keras.layers.Layer):
    """Colour constancy (Finlayson and Trezzi's shades of gray, as used by ISIC challenge
    entries): each image's channels are scaled so that their Minkowski p-means are equal. It
    removes the cast that differs between dermatoscopes and lighting, per image, so training,
    scoring and serving apply it alike. Expects pixels in [0, 1] and keeps them there."""

    def __init__(self, power: float = 6.0, **kwargs):
        super().__init__(**kwargs)
        if power < 1:
            raise ValueError(f"power must be at least 1, got {power}")
        self.power = float(power)

    def call(self, images):
        images = tf.cast(images, self.compute_dtype)
        # A floor keeps an all-black image from dividing by zero.
        illuminant = tf.reduce_mean(tf.pow(images, self.power), axis=[1, 2], keepdims=True) ** (1 / self.power)
        illuminant = tf.maximum(illuminant, 1e-3)
        gray = tf.reduce_mean(illuminant, axis=-1, keepdims=True)
        return tf.clip_by_value(images * gray / illuminant, 0.0, 1.0)

    def get_config(self):
        return {**super().get_config(), "power": self.power}
