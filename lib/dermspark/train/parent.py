"""train --init-from BUNDLE: fine-tuning a trained bundle on a new dataset (a hospital's own
labeled images). On the driver, the parent is found, its classes mapped to the dataset's and
its weights shipped to the ranks (`resolve_parent`); its stages replace the recipe's
(`fine_tune_stages`); each rank then carries the weights over (`carry_weights`)."""

import dataclasses
import logging

from dermspark import DermsparkError
from dermspark.labels import label_mapping, space_of
from dermspark.train.worker_config import StagePlan

log = logging.getLogger(__name__)

HEAD_EPOCHS, ALL_EPOCHS = 5, 10


def class_map(parent: list[str], classes: list[str]) -> list[list[int]] | None:
    """For each of the dataset's classes, the parent's classes whose weights it starts from;
    None when the lists are the same. Refused when a class has none."""
    if list(parent) == list(classes):
        return None
    try:
        mapping = label_mapping(space_of(parent), space_of(classes))
    except DermsparkError:
        raise DermsparkError(
            f"--init-from: the bundle's classes {list(parent)} cannot be mapped to the dataset's {list(classes)}"
        ) from None
    sources = [[index for index, name in enumerate(parent) if mapping.get(name) == wanted] for wanted in classes]
    missing = [wanted for wanted, found in zip(classes, sources, strict=True) if not found]
    if missing:
        raise DermsparkError(
            f"--init-from: no class of the bundle ({', '.join(parent)}) maps to the dataset's {', '.join(missing)}"
        )
    return sources


def resolve_parent(spark, settings, classes: list[str]) -> dict | None:
    """The parent bundle as the ranks need it, checked before anything slow."""
    if not settings.init_from:
        return None
    import os

    from dermspark.bundle import MODEL_FILE, local_copy, read_manifest
    from dermspark.models.weights import ship_weights
    from dermspark.tracking.registry import locate

    location, tracking_uri, registered = locate(settings.init_from, settings.mlflow_uri)
    manifest = read_manifest(location, tracking_uri)
    if manifest.model_name != settings.model:
        raise DermsparkError(
            f"--init-from {settings.init_from} is a {manifest.model_name} bundle: give --model {manifest.model_name}"
        )
    mapped = class_map(manifest.classes, classes)
    folder = local_copy(location, manifest, tracking_uri)
    return {
        "url": settings.init_from,
        "registered": registered.label if registered else None,
        "model_name": manifest.model_name,
        "model_sha256": manifest.model_sha256,
        "classes": manifest.classes,
        "class_map": mapped,
        "run_id": manifest.run_id,
        "weights": ship_weights(spark, os.path.join(folder, MODEL_FILE)),
    }


def fine_tune_stages(stages: list[StagePlan], settings) -> list[StagePlan]:
    """The recipe's first stage twice: the head alone at its rate (--epochs, default 5), then
    every layer but batch normalisation at a tenth of it (--fine-tune-epochs, default 10), as
    transfer learning does (the Hitta thesis' two stages)."""
    first = stages[0]
    head = dataclasses.replace(
        first, trainable="head", unfreeze_last=0, epochs=settings.epochs if settings.epochs is not None else HEAD_EPOCHS
    )
    every = dataclasses.replace(
        first,
        trainable="all",
        unfreeze_last=0,
        learning_rate=first.learning_rate / 10,
        epochs=settings.fine_tune_epochs if settings.fine_tune_epochs is not None else ALL_EPOCHS,
    )
    return [stage for stage in (head, every) if stage.epochs > 0]


def carry_weights(model, parent, mapped: list[list[int]] | None) -> None:
    """Every layer's weights from the parent's layer of the same name; the classifier (the last
    layer) row by mapped class: each class's kernel the mean of its sources', its bias their
    log-sum-exp, so a merged class starts with about the probability of its parts."""
    import numpy as np

    head = model.layers[-1]
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        source = parent.get_layer(layer.name).get_weights()
        if layer is head and mapped is not None:
            kernel, bias = source
            source = [
                np.stack([kernel[:, rows].mean(axis=1) for rows in mapped], axis=1),
                np.array([np.log(np.exp(bias[rows]).sum()) for rows in mapped], dtype=bias.dtype),
            ]
        layer.set_weights(source)


def set_trainable(model, which: str | None) -> None:
    """A fine-tuning stage's trainable layers: the head alone, or every layer but batch
    normalisation (whose statistics a small dataset would upset). None: as the model was built."""
    if which is None:
        return
    from tensorflow import keras

    for layer in model.layers:
        if which == "head":
            layer.trainable = layer is model.layers[-1]
        else:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
