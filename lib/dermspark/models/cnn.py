"""Small CNNs trained from scratch."""

from dermspark.models.registry import Recipe, Stage, register_model


def _augmentation():
    """Flips, small rotations, shifts and zoom (Huber and Nuneviller's list); active in
    training only, so a bundle predicts on the image as given."""
    from tensorflow import keras
    from tensorflow.keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical"),
            layers.RandomRotation(0.1),
            layers.RandomTranslation(0.1, 0.1),
            layers.RandomZoom(0.1),
        ],
        name="augmentation",
    )


def _color_jitter():
    """Brightness and contrast within 20%: dermatoscopes and lighting differ between clinics,
    and the training split holds too few of each to learn that from. Training only."""
    from tensorflow import keras
    from tensorflow.keras import layers

    return keras.Sequential(
        [layers.RandomBrightness(0.2, value_range=(0, 255)), layers.RandomContrast(0.2)],
        name="color_jitter",
    )


# Benbrahim, Hachimi, Amine (2020), Table 6.1.
@register_model(
    Recipe(
        input_size=(75, 100),
        preprocessing="rescale_0_1",
        batch_size=32,
        stages=(Stage(epochs=25, optimizer="adam", learning_rate=1e-3),),
        split="80/10/10",
        defaults={"num_classes": 7, "dropout": 0.5},
    )
)
def benbrahim_cnn(
    input_size,
    num_classes: int = 7,
    dropout: float = 0.5,
    augment: bool = False,
    color_jitter: bool = False,
    color_constancy: bool = False,
):
    """Four valid 3x3 convolutions (64, 64, 128, 128) each with 2x2 max-pooling, Flatten to 1024,
    Dropout, Dense 512, softmax. The paper gives no dropout rate; 0.5 is the Keras examples' choice.
    Pixels arrive as uint8 and are scaled inside the model, so a bundle needs no outside code.
    augment=True (not in the paper, which has no augmentation) adds huber_cnn's augmentation, which
    has no weights, so the parameter count stays the paper's. color_jitter=True adds random
    brightness and contrast in training; color_constancy=True scales each image's channels to a
    neutral illuminant (shades of gray) in training and prediction alike. Neither is in the paper
    and neither has weights."""
    from tensorflow import keras
    from tensorflow.keras import layers

    from dermspark.models.layers import ShadesOfGray

    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    height, width = input_size
    inputs = keras.Input(shape=(height, width, 3), name="image")
    x = _augmentation()(inputs) if augment else inputs
    x = _color_jitter()(x) if color_jitter else x
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = ShadesOfGray(name="shades_of_gray")(x) if color_constancy else x
    for index, filters in enumerate((64, 64, 128, 128), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", padding="valid", name=f"conv2d_{index}")(x)
        x = layers.MaxPooling2D(2, name=f"max_pooling2d_{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(512, activation="relu", name="dense_1")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="dense_2")(x)
    return keras.Model(inputs, outputs, name="benbrahim_cnn")


# Huber and Nuneviller (2020): a small multi-layer CNN from scratch on 120x90 images; its exact
# layers survive only as a lost figure, so this is a reconstruction. The paper split 70/10/20
# (ingest --split recipe:huber_cnn).
@register_model(
    Recipe(
        input_size=(90, 120),
        preprocessing="rescale_0_1",
        batch_size=32,
        stages=(Stage(epochs=50, optimizer="adam", learning_rate=1e-3),),
        split="70/10/20",
        defaults={"num_classes": 7, "dropout": 0.5},
    )
)
def huber_cnn(input_size, num_classes: int = 7, dropout: float = 0.5):
    """Three 3x3 convolutions (32, 64, 64) with 2x2 pooling, Dense 128, Dropout, softmax, after
    the paper's augmentation (flips, rotations, shifts, zoom), which acts in training only.
    Keras 2.15 has no shear layer, so the paper's shear is not reproduced."""
    from tensorflow import keras
    from tensorflow.keras import layers

    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    inputs = keras.Input(shape=(*input_size, 3), name="image")
    x = _augmentation()(inputs)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    for index, filters in enumerate((32, 64, 64), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", name=f"conv2d_{index}")(x)
        x = layers.MaxPooling2D(2, name=f"max_pooling2d_{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense_1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="dense_2")(x)
    return keras.Model(inputs, outputs, name="huber_cnn")
