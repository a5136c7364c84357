"""scratch_resnet_144: its shapes, augmentation that acts in training only, its recipe's plan, and
the label-smoothed loss."""

import numpy as np
import pytest
import tensorflow as tf
from dermspark.models import create_model, get_recipe
from dermspark.models.layers import ColorJitter, RandomDihedral, RandomResizedCrop
from dermspark.settings.train import TrainSettings
from dermspark.train.optimization import make_loss
from dermspark.train.plan import make_plan

PER_SPLIT = {"train": {"mel": 100, "nv": 600, "bkl": 100}, "validation": {"mel": 10, "nv": 60, "bkl": 10}}


def test_shapes_and_a_bundle_round_trip(tmp_path):
    from dermspark.models.keras_file import load_keras

    model = create_model("scratch_resnet_144", num_classes=3)
    assert model.input_shape == (None, 144, 144, 3) and model.output_shape == (None, 3)
    # Global pooling: no layer's weights depend on the input's height and width.
    assert model.get_layer("classifier").kernel.shape == (256, 3)
    assert model.count_params() < 2_000_000
    images = np.random.default_rng(0).integers(0, 256, (4, 144, 144, 3), dtype=np.uint8)
    probabilities = model(images, training=False).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "model.keras")
    np.testing.assert_allclose(
        load_keras(str(tmp_path / "model.keras"))(images, training=False), probabilities, atol=1e-6
    )
    with pytest.raises(ValueError, match="must name the same stages"):
        create_model("scratch_resnet_144", widths=(8, 16), blocks=(1,))


def test_augmentation_acts_in_training_only():
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (8, 16, 16, 3)), tf.float32)
    for layer in (RandomDihedral(), RandomResizedCrop(), ColorJitter()):
        np.testing.assert_array_equal(layer(images, training=False), images)
        trained = layer(images, training=True)
        assert trained.shape == images.shape and not np.array_equal(trained, images)
    assert float(tf.reduce_min(ColorJitter()(images * 4, training=True))) >= 0.0
    assert float(tf.reduce_max(ColorJitter()(images * 4, training=True))) <= 255.0


def test_dihedral_draws_all_eight_flips_and_turns_of_each_image():
    tf.keras.utils.set_random_seed(0)
    image = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    batch = tf.constant(np.repeat(image, 400, axis=0))
    seen = {tuple(view.numpy().ravel()) for view in RandomDihedral()(batch, training=True)}
    expected = set()
    for turns in range(4):
        turned = np.rot90(image[0], turns)
        expected |= {tuple(turned.ravel()), tuple(turned[:, ::-1].ravel())}
    assert seen == expected and len(seen) == 8
    with pytest.raises(ValueError, match="square"):
        RandomDihedral()(tf.zeros((1, 3, 4, 1)), training=True)


def test_the_recipe_plans_a_cosine_rate_smoothing_balanced_sampling_and_flips():
    plan = make_plan(
        get_recipe("scratch_resnet_144"), TrainSettings(dataset="d", output="o"), ["bkl", "mel", "nv"], PER_SPLIT, 2
    )
    [stage] = plan.stages
    assert stage.cosine and stage.restore_best and stage.monitor == "val_balanced_accuracy"
    assert plan.label_smoothing == 0.1
    assert plan.sampling_rates == pytest.approx([6.0, 6.0, 1.0])  # each class to 600
    assert get_recipe("scratch_resnet_144").tta == "flips"
    # Flags override the recipe; the papers' recipes keep their constant rate and no smoothing.
    plan = make_plan(
        get_recipe("scratch_resnet_144"),
        TrainSettings(dataset="d", output="o", lr_schedule="constant", label_smoothing=0.0),
        ["bkl", "mel", "nv"],
        PER_SPLIT,
        2,
    )
    assert not plan.stages[0].cosine and plan.label_smoothing == 0.0
    paper = make_plan(
        get_recipe("benbrahim_cnn"), TrainSettings(dataset="d", output="o"), ["bkl", "mel", "nv"], PER_SPLIT, 2
    )
    assert not paper.stages[0].cosine and paper.label_smoothing == 0.0


def test_label_smoothing_spreads_a_share_of_each_label_over_the_classes():
    probabilities = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = tf.constant([0, 2])
    loss = make_loss(0.3, 3)
    targets = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])  # 0.7 of the label plus 0.3 / 3 each
    expected = -(targets * np.log(probabilities.numpy())).sum(axis=1)
    np.testing.assert_allclose(loss(labels, probabilities), expected, rtol=1e-5)
    assert make_loss(0.0, 3) == "sparse_categorical_crossentropy"
