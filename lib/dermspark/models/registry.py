"""A registry in the manner of timm: each model registers its builder and its paper's recipe."""

from collections.abc import Callable
from dataclasses import dataclass, field

from dermspark import DermsparkError


@dataclass(frozen=True)
class Stage:
    """One call to fit. A second stage starts from the first stage's best checkpoint."""

    epochs: int
    optimizer: str = "adam"  # adam | sgd_nesterov
    learning_rate: float = 1e-3  # for one process; scaled by the number of processes
    momentum: float = 0.0  # sgd_nesterov only
    # > 0: ExponentialDecay(learning_rate, decay_steps, decay_rate, staircase=True)
    decay_steps: int = 0
    decay_rate: float = 1.0
    # > 0: stop when the monitored value has not improved for this many epochs
    early_stopping_patience: int = 0
    # True: the stage ends on its best epoch by the monitored value, not its last
    restore_best: bool = False
    # what "best" means: val_loss (lowest) or val_balanced_accuracy (highest)
    monitor: str = "val_loss"
    # > 0: before this stage, unfreeze that many base layers (BatchNormalization stays frozen)
    unfreeze_last: int = 0
    # True: after the warmup, the rate follows half a cosine down to 0 at the stage's last epoch
    cosine: bool = False


@dataclass(frozen=True)
class Imbalance:
    """How a recipe treats rare classes, all inside the training split only."""

    class_weights: bool = False  # loss weights n / (classes * n_class), from the training split
    cap_per_class: int = 0  # > 0: at most this many training images of a class per epoch
    oversample: bool = False  # rarer classes drawn more often, up to the largest class's count


@dataclass(frozen=True)
class Recipe:
    """What a model needs from data and training, with the paper's values as defaults."""

    input_size: tuple[int, int]  # height, width
    preprocessing: str  # how pixels are scaled inside the model, recorded in the bundle
    batch_size: int
    stages: tuple[Stage, ...]
    imbalance: Imbalance = Imbalance()
    split: str = "80/10/10"  # the paper's ratios: ingest --split recipe:NAME applies them
    positive_class: str | None = None  # binary models: the class sensitivity is about
    pretrained: str | None = None  # the base whose ImageNet weights --weights imagenet loads
    label_smoothing: float = 0.0  # share of each label's mass spread evenly over the classes
    tta: str = "none"  # test-time augmentation the bundle predicts with (settings.TEST_TIME_AUGMENTATIONS)
    defaults: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    builder: Callable
    recipe: Recipe


_REGISTRY: dict[str, Entry] = {}


def register_model(recipe: Recipe):
    def decorate(builder: Callable) -> Callable:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = Entry(builder, recipe)
        return builder

    return decorate


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DermsparkError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def get_recipe(name: str) -> Recipe:
    return _entry(name).recipe


def check_options(name: str, options: dict) -> None:
    """A misspelt option fails here, naming the builder's options, rather than as a TypeError
    inside every training process after the cluster has started them."""
    import inspect

    known = set(inspect.signature(_entry(name).builder).parameters) - {"input_size"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise DermsparkError(
            f"{name} has no option {', '.join(map(repr, unknown))}; its options: {', '.join(sorted(known))}"
        )


def create_model(name: str, **overrides):
    """The recipe states the input size once; builders receive it rather than repeat it."""
    entry = _entry(name)
    settings = {"input_size": entry.recipe.input_size, **entry.recipe.defaults, **overrides}
    return entry.builder(**settings)
