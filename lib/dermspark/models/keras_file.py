"""A .keras file's model, read in about the time building it takes: what bundles and fine-tuning's
parent weights load through."""

import json


def load_keras(path: str):
    """A .keras file's model, uncompiled, as keras.models.load_model gives it, in about the time
    building it takes.

    Keras 2.15 reads the weights' HDF5 file inside the .keras zip, and every backward seek in a
    zip member reads it again from its start on Python 3.11: Inception-ResNet-v2's 245 MB took
    69 to 79 s to load, against 17 s to build (Keras issue 19793, fixed in Keras 3 by
    extracting the file first). So the same here: the model from its config, then its weights
    from the extracted file, through Keras' public API."""
    import tempfile
    import zipfile

    from tensorflow import keras

    import dermspark.models.layers  # noqa: F401  registers the layers a model may name

    with zipfile.ZipFile(path) as archive:
        if set(archive.namelist()) != {"config.json", "metadata.json", "model.weights.h5"}:
            return keras.models.load_model(path, compile=False)  # assets or other weights: Keras' way
        config = json.loads(archive.read("config.json"))
        config["compile_config"] = None
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        with tempfile.TemporaryDirectory(prefix="dermspark-weights-") as folder:
            model.load_weights(archive.extract("model.weights.h5", folder))
    return model
