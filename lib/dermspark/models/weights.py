"""Pretrained weights come from a local file only: dermspark never downloads at run time."""

import os

from dermspark import DermsparkError

# What Keras' own cache calls each no-top ImageNet file, and its size, to tell users what to fetch.
IMAGENET_FILES = {
    "inception_resnet_v2": ("inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5", 219_055_592),
}


def keras_cache() -> str:
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def resolve_weights(weights: str | None, architecture: str) -> str | None:
    """'none' -> None (from scratch); 'imagenet' -> the file in Keras' cache; a path -> itself.
    A missing file is one clear error naming the file and where to put it."""
    if weights in (None, "", "none"):
        return None
    if weights == "imagenet":
        name, size = IMAGENET_FILES[architecture]
        path = os.path.join(keras_cache(), name)
        if os.path.isfile(path):
            return path
        raise DermsparkError(
            f"ImageNet weights for {architecture} are not on this machine and are never downloaded "
            f"at run time: put {name} ({size:,} bytes) in {keras_cache()}/ (or $KERAS_HOME/models/), "
            "or pass --weights /path/to/that/file, or --weights none to train from scratch"
        )
    if os.path.isfile(weights):
        return weights
    raise DermsparkError(f"weights file {weights} does not exist")
