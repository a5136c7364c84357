"""The two Inception-ResNet-v2 recipes: Benedetti et al. (2020) and the Hitta thesis (2023).

Pixels arrive as uint8 RGB and are scaled to [-1, 1] inside the model, as Keras'
inception_resnet_v2.preprocess_input does, so a bundle carries its own preprocessing.
"""

from dermspark.models.registry import Imbalance, Recipe, Stage, register_model
from dermspark.models.weights import local_weights


def _base(input_size, weights: str | None):
    from tensorflow import keras

    height, width = input_size
    return keras.applications.InceptionResNetV2(
        include_top=False,
        weights=local_weights(weights, "inception_resnet_v2"),
        input_shape=(height, width, 3),
    )


# Benedetti et al. (2020): SGD 6e-4 with momentum and Nesterov, batch 10, class weights, 450
# training images per class with augmentation, last 40 layers trainable, early stopping
# (patience 15), then 20 more epochs from the best checkpoint.
@register_model(
    Recipe(
        input_size=(299, 299),
        preprocessing="rescale_-1_1",
        batch_size=10,
        stages=(
            # 100 epochs is an upper bound: early stopping with patience 15 ends the stage.
            Stage(
                epochs=100,
                optimizer="sgd_nesterov",
                learning_rate=6e-4,
                momentum=0.9,
                early_stopping_patience=15,
                restore_best=True,
            ),
            # "we loaded the best model obtained in the first round ... an additional 20 epochs"
            Stage(epochs=20, optimizer="sgd_nesterov", learning_rate=6e-4, momentum=0.9, restore_best=True),
        ),
        imbalance=Imbalance(class_weights=True, cap_per_class=450),
        split="80/10/10",
        pretrained="inception_resnet_v2",
        defaults={"num_classes": 7, "weights": "imagenet", "trainable_layers": 40},
    )
)
def inception_resnet_v2_benedetti(input_size, num_classes=7, weights="imagenet", trainable_layers=40):
    """Inception-ResNet-v2 base, Flatten, Dense 64, Dense 64, softmax (the paper's Fig. 1);
    only the last `trainable_layers` layers of the base are trained."""
    from tensorflow import keras
    from tensorflow.keras import layers

    if trainable_layers < 0:
        raise ValueError(f"trainable_layers must be at least 0, got {trainable_layers}")
    base = _base(input_size, weights)
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= len(base.layers) - trainable_layers
    # The paper's augmentation names flips, translations, rotations and shear without amounts;
    # Keras 2.15 has no shear layer. Active in training only, so capped classes see new views.
    augmentation = keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical"),
            layers.RandomTranslation(height_factor=0.1, width_factor=0.1),
            layers.RandomRotation(0.1),
        ],
        name="augmentation",
    )
    inputs = keras.Input(shape=(*input_size, 3), name="image")
    x = augmentation(inputs)
    x = layers.Rescaling(1.0 / 127.5, offset=-1, name="rescale")(x)
    x = base(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense_1")(x)
    x = layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="inception_resnet_v2_benedetti")


# Hitta (2023), Table 3.3: Adam with ExponentialDecay(1e-3, 100000, 0.96, staircase), frozen
# base; then the last 30 non-BatchNormalization layers unfrozen and 40 epochs with Adam 1e-4.
@register_model(
    Recipe(
        input_size=(256, 256),
        preprocessing="rescale_-1_1",
        batch_size=64,
        stages=(
            Stage(epochs=200, optimizer="adam", learning_rate=1e-3, decay_steps=100_000, decay_rate=0.96),
            Stage(epochs=40, optimizer="adam", learning_rate=1e-4, unfreeze_last=30),
        ),
        split="80/10/10",
        positive_class="melanoma",
        pretrained="inception_resnet_v2",
        defaults={"num_classes": 2, "weights": "imagenet"},
    )
)
def inception_resnet_v2_hitta(input_size, num_classes=2, weights="imagenet"):
    """Augmentation, Rescaling to [-1, 1], frozen base, GlobalAveragePooling, Dense 1024, 1024,
    512, 512, 256, 256, 64 (ReLU), Dropout 0.3, softmax, as in the thesis' code. The
    augmentation layers act in training only."""
    from tensorflow import keras
    from tensorflow.keras import layers

    base = _base(input_size, weights)
    base.trainable = False
    augmentation = keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical"),
            layers.RandomRotation(0.4),
            layers.RandomTranslation(height_factor=0.1, width_factor=0.1),
            layers.RandomContrast(factor=0.1),
            layers.RandomZoom(0.4),
        ],
        name="augmentation",
    )
    inputs = keras.Input(shape=(*input_size, 3), name="image")
    x = augmentation(inputs)
    x = layers.Rescaling(1.0 / 127.5, offset=-1, name="rescale")(x)
    # training=False keeps the frozen base's BatchNormalization in inference mode, also when
    # the last layers are unfrozen for the second stage (Keras' transfer-learning guide).
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    for index, units in enumerate((1024, 1024, 512, 512, 256, 256, 64), start=1):
        x = layers.Dense(units, activation="relu", name=f"dense_{index}")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="inception_resnet_v2_hitta")


def unfreeze_last(model, count: int = 30) -> None:
    """The thesis' second stage: the last `count` layers of the base, BatchNormalization excepted."""
    from tensorflow.keras import layers

    base = model.get_layer("inception_resnet_v2")
    base.trainable = True
    for layer in base.layers[:-count]:
        layer.trainable = False
    for layer in base.layers[-count:]:
        layer.trainable = not isinstance(layer, layers.BatchNormalization)
