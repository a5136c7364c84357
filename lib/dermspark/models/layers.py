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


@keras.saving.register_keras_serializable(package="dermspark")
class RandomDihedral(keras.layers.Layer):
    """One of the eight flips and quarter turns of a square image, drawn per image, in training
    only: a dermatoscopic image has no up, down, left or right."""

    def call(self, images, training=None):
        if not training:
            return images
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"quarter turns need square images, got {images.shape[1]}x{images.shape[2]}")
        batch = tf.shape(images)[0]
        turned = tf.stack([tf.image.rot90(images, k) for k in range(4)])  # (4, batch, h, w, c)
        turns = tf.random.uniform([batch], 0, 4, dtype=tf.int32)
        images = tf.gather_nd(turned, tf.stack([turns, tf.range(batch)], axis=1))
        mirror = tf.random.uniform([batch, 1, 1, 1]) < 0.5
        return tf.where(mirror, tf.reverse(images, [2]), images)


@keras.saving.register_keras_serializable(package="dermspark")
class RandomResizedCrop(keras.layers.Layer):
    """Inception's crop, per image, in training only: a region of `scale` of the area and an
    aspect ratio within `ratio`, resized back to the input size. Covers other fields of view,
    zooms and the aspect ratios other clinics' exports are squashed from."""

    def __init__(self, scale=(0.35, 1.0), ratio=(0.75, 1.333), **kwargs):
        super().__init__(**kwargs)
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def call(self, images, training=None):
        if not training:
            return images
        batch = tf.shape(images)[0]
        area = tf.random.uniform([batch], *self.scale)
        log_ratio = tf.random.uniform([batch], tf.math.log(self.ratio[0]), tf.math.log(self.ratio[1]))
        # Height and width as shares of the image's; a crop larger than the image is clipped.
        height = tf.minimum(tf.sqrt(area / tf.exp(log_ratio)), 1.0)
        width = tf.minimum(tf.sqrt(area * tf.exp(log_ratio)), 1.0)
        top = tf.random.uniform([batch]) * (1.0 - height)
        left = tf.random.uniform([batch]) * (1.0 - width)
        boxes = tf.stack([top, left, top + height, left + width], axis=1)
        size = tf.shape(images)[1:3]
        cropped = tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, tf.range(batch), size)
        return tf.cast(cropped, images.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": list(self.scale), "ratio": list(self.ratio)}


@keras.saving.register_keras_serializable(package="dermspark")
class ColorJitter(keras.layers.Layer):
    """Per image, in training only, on pixels in [0, 255]: brightness and contrast, saturation
    (a blend with the image's grey), and a gain per channel (another camera's white balance,
    the cast colour constancy removes), each drawn within +-`strength` of 1."""

    def __init__(self, brightness=0.2, contrast=0.2, saturation=0.3, gain=0.15, **kwargs):
        super().__init__(**kwargs)
        self.brightness, self.contrast, self.saturation, self.gain = brightness, contrast, saturation, gain

    def call(self, images, training=None):
        if not training:
            return images
        batch = tf.shape(images)[0]

        def factor(strength, channels=1):
            return tf.random.uniform([batch, 1, 1, channels], 1.0 - strength, 1.0 + strength)

        x = tf.cast(images, tf.float32) * factor(self.gain, 3) * factor(self.brightness)
        grey = tf.reduce_mean(x, axis=-1, keepdims=True)
        x = grey + (x - grey) * factor(self.saturation)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = mean + (x - mean) * factor(self.contrast)
        return tf.clip_by_value(x, 0.0, 255.0)

    def get_config(self):
        return {
            **super().get_config(),
            "brightness": self.brightness,
            "contrast": self.contrast,
            "saturation": self.saturation,
            "gain": self.gain,
        }
