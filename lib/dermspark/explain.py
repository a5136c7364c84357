"""Why a score was given: Grad-CAM (Selvaraju et al., 2017) of the predicted class.

The gradient of the class's logit with respect to the last convolutional feature map, averaged
over the map, weights its channels; their weighted sum, rectified, is the heatmap, upsampled
to the image the model saw. On the image as given, not its flips: a heatmap belongs to one
orientation. Used by scoring (`--explain`) and the service (`explain=true`).
"""

import numpy as np

_POOLING = ("Pooling", "Flatten", "Dropout")


def last_feature_map(model):
    """The last layer with a spatial (batch, height, width, channels) output that is not a pooling:
    the last convolution's activation, or a pretrained base as a whole."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output_shape", None)
        if isinstance(shape, tuple) and len(shape) == 4 and not any(word in type(layer).__name__ for word in _POOLING):
            return layer
    raise ValueError("the model has no convolutional feature map to explain")


class GradCam:
    """Heatmaps for a bundle's model, one compiled function for every batch size."""

    def __init__(self, model, input_size: tuple[int, int]):
        import tensorflow as tf

        self.input_size = input_size
        kernel, bias = model.layers[-1].weights
        # The map as the outer model computes it: a pretrained base's own `.output` is of its own
        # graph, so the output of its last call (here, in this model) is taken.
        feature_map = last_feature_map(model).get_output_at(-1)
        inner = tf.keras.Model(model.inputs, [feature_map, model.layers[-1].input])

        def heatmaps(images, classes):
            with tf.GradientTape() as tape:
                feature_map, penultimate = inner(images, training=False)
                logits = tf.matmul(penultimate, kernel) + bias
                chosen = tf.gather(logits, classes, axis=1, batch_dims=1)
            gradients = tape.gradient(chosen, feature_map)
            weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            return tf.math.divide_no_nan(cam, peak)

        self._heatmaps = tf.function(
            heatmaps,
            input_signature=[tf.TensorSpec((None, *input_size, 3), tf.uint8), tf.TensorSpec((None,), tf.int32)],
        )

    def __call__(self, images: np.ndarray, classes) -> np.ndarray:
        """(n, height, width) float32 in [0, 1] at the model's input size: 1 where the evidence
        for the class is strongest, 0 where there is none."""
        import cv2

        maps = self._heatmaps(np.asarray(images, dtype=np.uint8), np.asarray(classes, dtype=np.int32)).numpy()
        height, width = self.input_size
        return np.stack([cv2.resize(found, (width, height), interpolation=cv2.INTER_LINEAR) for found in maps])


def _coloured(heatmap: np.ndarray) -> np.ndarray:
    import cv2

    bgr = cv2.applyColorMap((np.clip(heatmap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay_png(image: np.ndarray, heatmap: np.ndarray, weight: float = 0.45) -> bytes:
    """The image the model saw with the heatmap over it, as a PNG: what a reviewer opens."""
    from dermspark.png import encode_png

    blended = image.astype(np.float32) * (1 - weight) + _coloured(heatmap).astype(np.float32) * weight
    return encode_png(np.clip(blended, 0, 255).astype(np.uint8))


def heatmap_png(heatmap: np.ndarray) -> bytes:
    """The heatmap alone, coloured, its opacity its strength: for a page to lay over the image."""
    import cv2

    alpha = (np.clip(heatmap, 0, 1) * 200).astype(np.uint8)[..., None]
    rgba = np.concatenate([_coloured(heatmap), alpha], axis=-1)
    return cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))[1].tobytes()
