"""The python_function model of a dermspark bundle, logged as code (MLflow's "models from code")
rather than as a pickle: MLflow runs this file to load the model, which then loads the bundle
from the model's artifacts. Loading needs dermspark installed, as the model's requirements say.
"""

import mlflow.pyfunc
from mlflow.models import set_model

BUNDLE = "bundle"  # the artifact key and folder name (tracking.registry.BUNDLE_PATH)


class BundleModel(mlflow.pyfunc.PythonModel):
    """uint8 RGB images (n, height, width, 3), already decoded as the bundle's manifest says ->
    probabilities (n, classes), in the manifest's class order."""

    def load_context(self, context):
        from dermspark.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts[BUNDLE])

    def predict(self, context, model_input, params=None):
        return self.bundle.predict(model_input)  # Bundle.predict takes the array as uint8


set_model(BundleModel())
