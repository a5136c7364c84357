"""The python_function model of a dermspark bundle, logged as code (MLflow's "models from code")
rather than as a pickle: MLflow runs this file to load the model, which then loads the bundle
from the model's artifacts. Loading needs dermspark installed, as the model's requirements say.
"""

import mlflow.pyfunc
from mlflow.models import set_model

BUNDLE = "bundle"  # the artifact key and folder name (tracking.registry.BUNDLE_PATH)
IMAGE = "image"  # the signature's one input (tracking.model.IMAGE)


class BundleModel(mlflow.pyfunc.PythonModel):
    """uint8 RGB images (n, height, width, 3), already decoded as the bundle's manifest says ->
    probabilities (n, classes), float32, in the manifest's class order. Calibrated by the
    bundle's temperature unless `params={"calibration": "none"}`: the probabilities batch
    scoring and the service give by default, for the same pixels."""

    def load_context(self, context):
        from dermspark.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts[BUNDLE])

    def predict(self, context, model_input, params=None):
        from dermspark.bundle import temperature_of
        from dermspark.settings import CALIBRATIONS

        calibration = (params or {}).get("calibration", "temperature")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {calibration!r}")
        # MLflow hands a signature's named input over as {name: array}, whatever the caller gave.
        images = model_input[IMAGE] if isinstance(model_input, dict) else model_input
        # Bundle.predict takes the array as uint8.
        return self.bundle.predict(images, temperature_of(self.bundle.manifest, calibration))


set_model(BundleModel())
