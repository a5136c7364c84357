"""A small residual network trained from scratch, built to hold on other clinics' images.

Not from the papers: their from-scratch CNNs (benbrahim_cnn, huber_cnn) learn HAM10000's cameras
as much as its lesions. This one sees more pixels (144x144 against 75x100), normalises every
layer's inputs (batch normalisation), pools globally instead of flattening a position-bound map,
and trains under augmentation meant to cover other cameras: per-image colour gains and jitter,
random resized crops with aspect-ratio changes, and all eight flips and quarter turns (a square
input makes those exact). Its recipe adds a cosine learning rate, label smoothing, class-balanced
sampling and test-time flips; every ingredient is chosen on inner validation (docs/results.md).
"""

from dermspark.models.registry import Imbalance, Recipe, Stage, register_model


def _block(x, filters: int, stride: int, name: str):
    """Two 3x3 convolutions with batch normalisation, and the shortcut (a strided 1x1 where the
    shape changes): He et al.'s basic block."""
    from tensorflow.keras import layers

    shortcut = x
    y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


@register_model(
    Recipe(
        input_size=(144, 144),
        preprocessing="rescale_0_1",
        batch_size=32,
        stages=(
            Stage(
                epochs=30,
                optimizer="adam",
                learning_rate=1e-3,
                cosine=True,
                restore_best=True,
                monitor="val_balanced_accuracy",
            ),
        ),
        imbalance=Imbalance(oversample=True, cap_per_class=1200),
        label_smoothing=0.1,
        tta="flips",
        defaults={"num_classes": 7, "dropout": 0.2},
    )
)
def scratch_resnet_144(
    input_size,
    num_classes: int = 7,
    dropout: float = 0.2,
    widths: tuple = (32, 64, 128, 256),
    blocks: tuple = (1, 1, 2, 1),
    augment: bool = True,
):
    """A 3x3 stride-2 stem and 2x2 max-pooling (144 -> 36), then four stages of basic blocks
    (`blocks` each, `widths` filters, each stage after the first halving the size), global
    average pooling, dropout and a softmax. Pixels arrive as uint8 and are scaled inside;
    augmentation acts in training only, so a bundle predicts on the image as given."""
    from tensorflow import keras
    from tensorflow.keras import layers

    from dermspark.models.layers import ColorJitter, RandomDihedral, RandomResizedCrop

    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if len(widths) != len(blocks):
        raise ValueError(f"widths {widths} and blocks {blocks} must name the same stages")
    inputs = keras.Input(shape=(*input_size, 3), name="image")
    x = inputs
    if augment:
        x = RandomResizedCrop(name="random_resized_crop")(x)
        x = RandomDihedral(name="random_dihedral")(x)
        x = ColorJitter(name="color_jitter")(x)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = layers.Conv2D(widths[0], 3, 2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for stage, (filters, count) in enumerate(zip(widths, blocks, strict=True)):
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            x = _block(x, filters, stride, f"stage{stage + 1}_block{index + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="scratch_resnet_144")
