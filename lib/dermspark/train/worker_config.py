"""What crosses from the driver to every Horovod rank: frozen records, pickled with the
function each rank runs (the ranks import dermspark themselves, so this module is on both
sides): the plan of its stages, and the config that carries it.
"""

import dataclasses
import json
from dataclasses import dataclass, field

from dermspark.manifests import BundleManifest
from dermspark.models.registry import Stage


@dataclass(frozen=True)
class StagePlan(Stage):
    """A recipe's stage as this run trains it: the settings' overrides applied."""

    ema: float = 0.0  # momentum of the stage's weight average; 0: none
    trainable: str | None = None  # as built; fine-tuning (train.parent) names "head" or "all"


@dataclass(frozen=True)
class TrainPlan:
    """What every rank does, decided once on the driver and saved with the run (settings.json)."""

    batch_size: int  # per process
    stages: tuple[StagePlan, ...]
    imbalance: dict  # class_weights, cap_per_class, oversample
    sampling_rates: list[float]  # expected copies per epoch of a training image, by class
    class_weights: dict[int, float] | None
    steps_per_epoch: int  # the same on every rank, so no rank waits at an epoch's end
    validation_steps: int
    label_smoothing: float = 0.0  # what plans stored before the setting trained with
    # The driver's, once it has looked at the dataset's shards and the cluster:
    rows_per_shard: list[int] = field(default_factory=list)
    cache_training: bool = False  # every rank's training shard fits in --cache-mb
    threads_per_rank: int = 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainPlan":
        """A plan as settings.json and a bundle's `training_settings` store it: JSON made the
        stages mappings and the class weights' keys strings. Fields a stored plan lacks (written
        before they existed) take their defaults."""
        stage_fields = {item.name for item in dataclasses.fields(StagePlan)}
        stages = tuple(
            StagePlan(**{key: value for key, value in stage.items() if key in stage_fields})
            for stage in values["stages"]
        )
        weights = values.get("class_weights")
        known = {item.name for item in dataclasses.fields(cls)} - {"stages", "class_weights"}
        return cls(
            **{key: value for key, value in values.items() if key in known},
            stages=stages,
            class_weights=None if weights is None else {int(key): value for key, value in weights.items()},
        )

    @classmethod
    def from_json(cls, text: str) -> "TrainPlan":
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    dataset_url: str  # the dataset's folder of the model's image size
    folds: dict | None  # a cross-validation fold's {split: [folds]}; None: the dataset's own split
    model: str
    model_options: dict  # create_model's keyword arguments (classes, weights, the settings' options)
    classes: list[str]
    majority_label: int  # the training split's most common class: the baseline's prediction
    positive_class: str | None  # the recipe's positive class when it is one of the classes
    plan: TrainPlan
    seed: int
    target_sensitivity: float  # the melanoma operating point's
    calibration: str
    review: dict  # the review flag's rate, method and out-of-distribution check set
    parent: dict | None  # --init-from: the parent's weights file and class map
    externals: list[dict] = field(default_factory=list)  # {name, url} of each --external dataset
    store_url: str  # checkpoints and TensorBoard files
    bundle_manifest: BundleManifest  # as far as the driver knows it; rank 0 adds what training finds
    tensorboard_url: str
    mlflow: dict | None  # the MLflow run rank 0 logs epochs to
    output_url: str = ""  # the staging folder rank 0 writes the bundle into
