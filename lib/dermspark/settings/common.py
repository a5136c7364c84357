"""What several jobs' settings share: the choices they offer, help they repeat, the MLflow
server setting."""

from typing import Any

from dermspark.settings_core import setting

CALIBRATIONS = ("temperature", "none")
TRAIN_CALIBRATIONS = ("auto", "temperature", "none")
LINKS = ("inside", "follow")
LINKS_HELP = (
    "symbolic links in the input: inside follows them to files inside the input only (one leading out "
    "is rejected as outside_archive); follow follows them anywhere, for a folder of links to a selection"
)
TEST_TIME_AUGMENTATIONS = ("none", "flips")
# none: the pixels as decoded (the papers'); shades_of_gray: each image's channels scaled so that
# their Minkowski p-means are equal (Finlayson and Trezzi 2004, as ISIC challenge entries did);
# gray_world: the same with p = 1 (channel means equal). Applied by images.py.
COLOR_CONSTANCY = ("none", "shades_of_gray", "gray_world")
# The review flag's out-of-distribution detectors (dermspark.review); mahalanobis chosen by
# detection AUROC (docs/score.md).
REVIEW_METHODS = ("mahalanobis", "energy", "max_softmax")
CONFIDENCE_HELP = (
    "flag a prediction for review (reason 'uncertain') when its top calibrated probability is "
    "under this; default: never"
)
THRESHOLD_HELP = (
    "melanoma probability at or above which melanoma_flag is set; default: the bundle's "
    "operating point (chosen on validation for train's --target-sensitivity), else 0.5"
)


def mlflow_uri_setting() -> Any:
    """The one tracking-server setting, shared by train, score and serve."""
    return setting(
        None,
        "MLflow tracking server (e.g. http://127.0.0.1:5000); default: "
        "MLFLOW_TRACKING_URI; none: no tracking, and no models:/ URIs",
    )
