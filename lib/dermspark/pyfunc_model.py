"""The python_function model of a dermspark bundle, logged as code (MLflow's "models from code")
rather than as a pickle: MLflow runs this file to load the model, which then loads the bundle
from the model's artifacts. Loading needs dermspark installed, as the model's requirements say.
"""

from mlflow.models import set_model
from mlflow.pyfunc.model import PythonModel

BUNDLE = "bundle"  # the artifact key and folder name (tracking.registry.BUNDLE_PATH)
IMAGE = "image"  # the signature's one input (logged_model.IMAGE)


class BundleModel(PythonModel):
    """uint8 RGB images (n, height, width, 3), already decoded as the bundle's manifest says ->
    a DataFrame of n rows, as scoring's table names them: prob_CLASS (float32) for each class in
    the manifest's order, and the review flag's ood_score, review and review_reason (null for a
    bundle without one). Calibrated by the bundle's temperature unless
    `params={"calibration": "none"}`: what batch scoring and the service give for the same pixels."""

    def load_context(self, context):
        from dermspark.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts[BUNDLE])

    def predict(self, context, model_input, params=None):
        from dermspark.settings.common import CALIBRATIONS

        calibration = (params or {}).get("calibration", "temperature")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {calibration!r}")
        import numpy as np
        import pandas as pd

        # MLflow hands a signature's named input over as {name: array}, whatever the caller gave.
        images = np.asarray(model_input[IMAGE] if isinstance(model_input, dict) else model_input, dtype=np.uint8)
        probabilities, review = self.bundle.predict_reviewed(
            images, self.bundle.manifest.temperature(calibration), (params or {}).get("review_confidence")
        )
        frame = pd.DataFrame(
            {f"prob_{name}": probabilities[:, index] for index, name in enumerate(self.bundle.classes)}
        )
        scores, flags, reasons = review if review is not None else ([None] * len(images),) * 3
        frame["ood_score"] = [None if score is None else float(score) for score in scores]
        frame["review"] = [None if flag is None else bool(flag) for flag in flags]
        frame["review_reason"] = list(reasons)
        return frame


set_model(BundleModel())
