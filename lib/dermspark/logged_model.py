"""A bundle as an MLflow model: the bundle folder itself (model.keras and manifest.json) under
the model's artifacts/bundle, a python_function flavour that loads it (pyfunc_model.py),
and a tensor signature.

Nothing of the bundle is translated: scoring and serving fetch the same two files from the
registry that they would read from a folder, so a registered model decodes and predicts exactly
as its bundle does. MLflow users can also load it with mlflow.pyfunc.load_model and call
predict on uint8 RGB arrays of the bundle's input size: a DataFrame of the calibrated
probabilities (prob_CLASS, as scoring and serving give by default, or the model's own with
params={"calibration": "none"}) and the review flag (ood_score, review, review_reason).
"""

import contextlib
import io
import logging
import os
import warnings

from dermspark.manifests import BundleManifest

BUNDLE = "bundle"  # the artifact key and folder name (as in pyfunc_model, and registry.BUNDLE_PATH)
IMAGE = "image"  # the signature's one input, by this name (as in pyfunc_model)
# Logged as code: MLflow runs this file to load the model.
CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyfunc_model.py")


def signature(manifest: BundleManifest):
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    height, width = manifest.height_width
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, int(height), int(width), 3), IMAGE)]),
        # The columns of scoring's predictions table that come from the model.
        outputs=Schema(
            [
                *[ColSpec("float", f"prob_{name}") for name in manifest.classes],
                ColSpec("float", "ood_score", required=False),
                ColSpec("boolean", "review", required=False),
                ColSpec("string", "review_reason", required=False),
            ]
        ),
        # As scoring's and serving's --calibration and --review-confidence.
        params=ParamSchema(
            [ParamSpec("calibration", "string", "temperature"), ParamSpec("review_confidence", "double", None)]
        ),
    )


def requirements() -> list[str]:
    """Given, not inferred: inference would load the model in a child process and ask pip."""
    from importlib import metadata

    names = ("dermspark", "tensorflow-cpu", "numpy", "pillow", "opencv-python-headless", "mlflow")
    found = []
    for name in names:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def log_bundle(folder: str, register: str | None):
    """Logs the local bundle folder (named `bundle`) into the active run; registers it as
    `register` when given. Returns MLflow's ModelInfo."""
    import mlflow.pyfunc

    with open(os.path.join(folder, "manifest.json")) as handle:
        manifest = BundleManifest.from_json(handle.read())
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # MLflow prints its own progress to stderr and advises on what the signature already fixes.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=CODE,
            artifacts={BUNDLE: folder},
            signature=signature(manifest),
            pip_requirements=requirements(),
            registered_model_name=register,
            metadata={
                key: manifest.document()[key]
                for key in ("model_name", "classes", "input_size", "preprocessing", "model_sha256", "positive_class")
                if key in manifest.document()
            },
        )
