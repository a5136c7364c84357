import numpy as np
import pytest
from dermspark import DermsparkError
from dermspark.manifests import BundleManifest
from dermspark.models import create_model, get_recipe, list_models

# Benbrahim et al. (2020), Table 6.1: (layer, output shape, parameters). The table's first row
# repeats the input shape; with valid 3x3 convolutions the real output is 73x98.
TABLE_6_1 = [
    ("conv2d_1", (73, 98, 64), 1792),
    ("max_pooling2d_1", (36, 49, 64), 0),
    ("conv2d_2", (34, 47, 64), 36928),
    ("max_pooling2d_2", (17, 23, 64), 0),
    ("conv2d_3", (15, 21, 128), 73856),
    ("max_pooling2d_3", (7, 10, 128), 0),
    ("conv2d_4", (5, 8, 128), 147584),
    ("max_pooling2d_4", (2, 4, 128), 0),
    ("flatten", (1024,), 0),
    ("dropout", (1024,), 0),
    ("dense_1", (512,), 524800),
    ("dense_2", (7,), 3591),
]


def test_benbrahim_cnn_matches_table_6_1():
    model = create_model("benbrahim_cnn")
    assert model.input_shape == (None, 75, 100, 3)
    for name, shape, parameters in TABLE_6_1:
        layer = model.get_layer(name)
        assert layer.output_shape[1:] == shape, name
        assert layer.count_params() == parameters, name
    assert model.count_params() == sum(p for _, _, p in TABLE_6_1) == 788_551


def test_recipe_carries_the_paper_values():
    recipe = get_recipe("benbrahim_cnn")
    assert recipe.input_size == (75, 100)
    assert [stage.epochs for stage in recipe.stages] == [25]
    assert recipe.stages[0].optimizer == "adam"
    assert recipe.split == "80/10/10"


def test_overrides_reach_the_builder():
    model = create_model("benbrahim_cnn", num_classes=2)
    assert model.output_shape == (None, 2)


def test_benbrahim_augmentation_acts_in_training_only():
    model = create_model("benbrahim_cnn", augment=True)
    assert model.count_params() == 788_551
    images = np.random.default_rng(0).integers(0, 256, size=(4, 75, 100, 3)).astype("float32")
    plain = create_model("benbrahim_cnn")
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(model(images, training=False), plain(images, training=False), atol=1e-6)
    augmented = model.get_layer("augmentation")(images, training=True)
    assert not np.allclose(augmented, images)


def test_color_options_add_no_weights_and_jitter_in_training_only():
    model = create_model("benbrahim_cnn", color_jitter=True, color_constancy=True)
    assert model.count_params() == 788_551
    images = np.random.default_rng(1).integers(0, 256, size=(4, 75, 100, 3)).astype("float32")
    first, second = model(images, training=False), model(images, training=False)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(model.get_layer("color_jitter")(images, training=True), images)


def test_shades_of_gray_neutralises_a_colour_cast():
    from dermspark.models.layers import ShadesOfGray

    rng = np.random.default_rng(2)
    scene = rng.uniform(0.1, 0.9, size=(2, 8, 8, 1)).astype("float32").repeat(3, axis=-1)
    cast = scene * np.array([1.0, 0.7, 0.4], dtype="float32")  # a reddish illuminant
    corrected = ShadesOfGray(power=6)(cast).numpy()
    # Each image's channels now have equal 6-means, so a grey scene is grey again, at the
    # cast image's mean brightness, and an all-black image stays black.
    np.testing.assert_allclose(corrected[..., 0], corrected[..., 1], rtol=1e-5)
    np.testing.assert_allclose(corrected[..., 1], corrected[..., 2], rtol=1e-5)
    np.testing.assert_allclose(corrected[..., 0], scene[..., 0] * 0.7, rtol=1e-5)
    assert np.all(ShadesOfGray()(np.zeros((1, 4, 4, 3), "float32")).numpy() == 0)
    with pytest.raises(ValueError, match="power"):
        ShadesOfGray(power=0)


def test_a_saved_model_with_dermspark_layers_loads_through_the_bundle(tmp_path):
    import subprocess
    import sys

    from dermspark.bundle import save_bundle

    model = create_model("benbrahim_cnn", color_constancy=True)
    images = np.random.default_rng(3).integers(0, 256, size=(2, 75, 100, 3)).astype("uint8")
    np.save(tmp_path / "images.npy", images)
    save_bundle(str(tmp_path / "bundle"), model, BundleManifest(model_name="benbrahim_cnn", input_size=[75, 100]))
    # A fresh process, as scoring's executors are: nothing has imported the layer's module.
    script = (
        "import sys, numpy as np; from dermspark.bundle import load_bundle; "
        "model = load_bundle(sys.argv[1]).model; "
        "np.save(sys.argv[3], model.predict_on_batch(np.load(sys.argv[2])))"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "bundle"),
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.npy"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), model.predict_on_batch(images), atol=1e-6)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(DermsparkError, match="benbrahim_cnn"):
        create_model("resnet_from_nowhere")
    assert "benbrahim_cnn" in list_models()


def _trainable(model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


@pytest.fixture(scope="module")
def inception():
    """Each Inception-ResNet-v2 model built once for this module's tests (some 20 s a build
    here); a test that changes which layers train does so last (test_hitta_model_...)."""
    built = {}

    def get(name):
        if name not in built:
            built[name] = create_model(name, weights="none")
        return built[name]

    return get


@pytest.mark.parametrize(
    ("name", "input_shape", "classes"),
    [
        ("benbrahim_cnn", (75, 100, 3), 7),
        ("huber_cnn", (90, 120, 3), 7),
        ("inception_resnet_v2_benedetti", (299, 299, 3), 7),
        ("inception_resnet_v2_hitta", (256, 256, 3), 2),
        ("scratch_resnet_144", (144, 144, 3), 7),
    ],
)
def test_every_registered_model_builds_from_scratch(inception, name, input_shape, classes):
    model = inception(name) if name.startswith("inception") else create_model(name)
    assert model.input_shape == (None, *input_shape)
    assert model.output_shape == (None, classes)
    assert get_recipe(name).input_size == input_shape[:2]
    assert len(list_models()) == 5  # each registered model is one of the cases above


def test_hitta_model_matches_thesis_table_3_3(inception):
    from dermspark.models.inception import unfreeze_last

    model = inception("inception_resnet_v2_hitta")
    assert model.count_params() == 57_961_378
    assert _trainable(model) == 3_624_642
    unfreeze_last(model, 30)
    base = model.get_layer("inception_resnet_v2")
    unfrozen = [layer for layer in base.layers[-30:] if layer.trainable]
    assert unfrozen and not any(layer.__class__.__name__ == "BatchNormalization" for layer in unfrozen)
    assert not any(layer.trainable for layer in base.layers[:-30])
    assert _trainable(model) > 3_624_642


def test_benedetti_trains_only_the_last_40_base_layers(inception):
    model = inception("inception_resnet_v2_benedetti")
    base = model.get_layer("inception_resnet_v2")
    assert [layer.trainable for layer in base.layers] == [False] * (len(base.layers) - 40) + [True] * 40
    assert model.get_layer("dense_1").output_shape == (None, 64)


def test_missing_imagenet_weights_name_the_file_and_where_it_goes(tmp_path, monkeypatch):
    from dermspark import DermsparkError
    from dermspark.models.weights import resolve_weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DermsparkError) as caught:
        resolve_weights("imagenet", "inception_resnet_v2")
    message = str(caught.value)
    assert "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "models") in message and "219,055,592 bytes" in message
    (tmp_path / "models").mkdir()
    weights = tmp_path / "models" / "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    weights.write_bytes(b"")
    assert resolve_weights("imagenet", "inception_resnet_v2") == str(weights)
    assert resolve_weights("none", "inception_resnet_v2") is None


def test_bundle_predict_gives_keras_probabilities_for_any_batch_size(tmp_path):
    """Bundle.predict, the compiled function scoring and serving call, gives the probabilities
    Keras' predict_on_batch gives, for batches of any size, from one trace: a fixed batch shape
    would fail on the small batch, a retrace per size would count more than one."""
    from dermspark.bundle import load_bundle, save_bundle

    model = create_model("benbrahim_cnn")
    bundle = load_bundle(
        save_bundle(str(tmp_path / "bundle"), model, BundleManifest(model_name="benbrahim_cnn", input_size=[75, 100]))
    )
    rng = np.random.default_rng(5)
    for count in (6, 1, 9):
        images = rng.integers(0, 256, size=(count, 75, 100, 3)).astype("uint8")
        probabilities = bundle.predict(images)
        assert probabilities.dtype == np.float32 and probabilities.shape == (count, 7)
        np.testing.assert_array_equal(probabilities, model.predict_on_batch(images))
    assert bundle._predict.experimental_get_tracing_count() == 1


def test_a_flips_bundle_predicts_the_mean_over_the_four_flips(tmp_path):
    """--tta flips: each image's probabilities are the mean of the model's on the image and its
    horizontal, vertical and double flips, worked out here one flip at a time with numpy, for
    any batch size; a bundle asking for an augmentation this version does not know is an error."""
    from dermspark import DermsparkError
    from dermspark.bundle import Bundle, load_bundle, save_bundle
    from dermspark.score.predict import output_settings

    model = create_model("benbrahim_cnn")
    url = save_bundle(
        str(tmp_path / "bundle"),
        model,
        BundleManifest(model_name="benbrahim_cnn", input_size=[75, 100], test_time_augmentation="flips"),
    )
    bundle = load_bundle(url)
    rng = np.random.default_rng(6)
    for count in (3, 1):
        images = rng.integers(0, 256, size=(count, 75, 100, 3)).astype("uint8")
        views = [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]
        expected = np.mean([model.predict_on_batch(np.ascontiguousarray(view)) for view in views], axis=0)
        probabilities = bundle.predict(images)
        assert probabilities.shape == (count, 7)
        np.testing.assert_allclose(probabilities, expected, atol=1e-6)
        # The model sees the image's flips as different images: the mean is not one pass.
        assert np.abs(probabilities - model.predict_on_batch(images)).max() > 1e-4
    later = BundleManifest(input_size=[75, 100], test_time_augmentation="rotations")
    with pytest.raises(DermsparkError, match="'rotations'"):
        Bundle(model, later, "b").predict(images)
    # Scoring's driver and the service ask first, before any image is read.
    with pytest.raises(DermsparkError, match="'rotations'"):
        output_settings(later, "temperature", None)


@pytest.mark.parametrize("name", ["benbrahim_cnn", "huber_cnn"])
def test_load_keras_gives_what_keras_load_model_gives(tmp_path, name):
    """Bundles load through load_keras, which extracts the weights' file before reading it
    (Keras 2.15 reads it inside the zip, minutes for Inception): the same configuration, the
    same weights by name, the same trainable weights and the same outputs as Keras' own."""
    import tensorflow as tf
    from dermspark.models.keras_file import load_keras

    model = create_model(name)
    path = str(tmp_path / "model.keras")
    model.save(path)
    fast, keras_own = load_keras(path), tf.keras.models.load_model(path, compile=False)
    assert fast.get_config() == keras_own.get_config()
    assert [weight.name for weight in fast.trainable_weights] == [weight.name for weight in keras_own.trainable_weights]
    for mine, theirs in zip(fast.weights, keras_own.weights, strict=True):
        assert mine.name == theirs.name
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    images = np.random.default_rng(1).integers(0, 256, size=(3, *model.input_shape[1:3], 3)).astype("uint8")
    np.testing.assert_array_equal(fast(images, training=False).numpy(), keras_own(images, training=False).numpy())
