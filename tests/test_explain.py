"""Grad-CAM: on a model that learned to find a patch, the heatmap's peak lies in the patch."""

import numpy as np
import pytest
from dermspark.explain import GradCam, heatmap_png, last_feature_map, overlay_png

SIZE, PATCH = (48, 64), 12


def _images(count: int, rng):
    """Noise; class 1 holds a bright square at a random place, class 0 none."""
    images = rng.integers(0, 120, (count, *SIZE, 3)).astype(np.uint8)
    labels = np.arange(count) % 2
    corners = np.stack([rng.integers(0, SIZE[0] - PATCH, count), rng.integers(0, SIZE[1] - PATCH, count)], axis=1)
    for image, label, (top, left) in zip(images, labels, corners, strict=True):
        if label:
            image[top : top + PATCH, left : left + PATCH] = (250, 230, 40)
    return images, labels, corners


@pytest.fixture(scope="module")
def trained():
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(0)
    inputs = layers.Input((*SIZE, 3), dtype="uint8")
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, layers.Dense(2, activation="softmax")(x))
    model.compile(tf.keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels, _ = _images(400, np.random.default_rng(0))
    model.fit(images, labels, epochs=20, batch_size=32, verbose=0)
    return model


def test_the_heatmap_peaks_in_the_patch_that_decides_the_class(trained):
    images, labels, corners = _images(60, np.random.default_rng(1))
    assert trained.evaluate(images, labels, verbose=0)[1] > 0.9
    assert "Conv2D" in type(last_feature_map(trained)).__name__
    with_patch = labels == 1
    maps = GradCam(trained, SIZE)(images[with_patch], np.ones(with_patch.sum(), dtype=np.int32))
    assert maps.shape == (with_patch.sum(), *SIZE) and maps.min() >= 0 and maps.max() <= 1
    margin = 2  # the feature map is half the image's size: a peak can sit a pixel outside
    inside = []
    for heatmap, (top, left) in zip(maps, corners[with_patch], strict=True):
        row, column = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        inside.append(top - margin <= row < top + PATCH + margin and left - margin <= column < left + PATCH + margin)
    assert np.mean(inside) >= 0.8, f"the peak was in the patch for {np.mean(inside):.0%} of images"


def test_heatmaps_encode_as_pngs_of_the_image_size(trained):
    import cv2

    images, _, _ = _images(2, np.random.default_rng(2))
    [heatmap] = GradCam(trained, SIZE)(images[1:], [1])
    overlay = cv2.imdecode(np.frombuffer(overlay_png(images[1], heatmap), np.uint8), cv2.IMREAD_UNCHANGED)
    layer = cv2.imdecode(np.frombuffer(heatmap_png(heatmap), np.uint8), cv2.IMREAD_UNCHANGED)
    assert overlay.shape == (*SIZE, 3) and layer.shape == (*SIZE, 4)
    # The layer is transparent where the heatmap is cold and opaque where it is hot.
    assert layer[..., 3].flat[np.argmax(heatmap)] > layer[..., 3].flat[np.argmin(heatmap)]


@pytest.mark.parametrize("name", ["benbrahim_cnn", "huber_cnn", "scratch_resnet_144", "inception_resnet_v2_hitta"])
def test_every_kind_of_registered_model_can_be_explained(name):
    """Plain convolutions, residual blocks, and a pretrained base nested as one layer (whose map
    is taken where the outer model calls it)."""
    from dermspark.models import create_model, get_recipe

    recipe = get_recipe(name)
    # The pretrained base at a smaller input: the nesting is what is tested, and Grad-CAM through
    # Inception-ResNet-v2 at its 256x256 took 37 s of the suite (96x96: under a tenth of that).
    size = (96, 96) if recipe.pretrained else tuple(recipe.input_size)
    options = {"weights": "none", "input_size": size} if recipe.pretrained else {}
    model = create_model(name, num_classes=2, **options)
    images = np.random.default_rng(0).integers(0, 256, (2, *size, 3), dtype=np.uint8)
    maps = GradCam(model, size)(images, [0, 1])
    assert maps.shape == (2, *size) and np.isfinite(maps).all() and maps.max() <= 1
