"""What crosses from the driver to every Horovod rank: one frozen record, pickled with the
function each rank runs. The ranks import dermspark themselves, so this module is on both sides."""

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    dataset_url: str  # the dataset's folder of the model's image size
    folds: dict | None  # a cross-validation fold's {split: [folds]}; None: the dataset's own split
    model: str
    model_options: dict  # create_model's keyword arguments (classes, weights, the settings' options)
    classes: list[str]
    majority_label: int  # the training split's most common class: the baseline's prediction
    positive_class: str | None  # the recipe's positive class when it is one of the classes
    plan: dict  # train.plan's stages, steps and sampling, with the shards' rows
    seed: int
    target_sensitivity: float  # the melanoma operating point's
    calibration: str
    review: dict  # the review flag's rate, method and out-of-distribution check set
    parent: dict | None  # --init-from: the parent's weights file and class map
    externals: list[dict] = field(default_factory=list)  # {name, url} of each --external dataset
    store_url: str  # checkpoints and TensorBoard files
    bundle_manifest: dict  # the bundle's manifest so far; rank 0 adds what training finds
    tensorboard_url: str
    mlflow: dict | None  # the MLflow run rank 0 logs epochs to
    output_url: str = ""  # the staging folder rank 0 writes the bundle into
