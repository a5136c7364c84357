"""A registry in the manner of timm: each model registers its builder and its paper's recipe."""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    """What a model needs from data and training, with the paper's values as defaults."""

    input_size: tuple[int, int]  # height, width
    preprocessing: str  # how pixels are scaled inside the model, recorded in the bundle
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str = "adam"
    split: str = "80/10/10"
    notes: str = ""
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
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def get_recipe(name: str) -> Recipe:
    return _entry(name).recipe


def create_model(name: str, **overrides):
    """The recipe states the input size once; builders receive it rather than repeat it."""
    entry = _entry(name)
    settings = {"input_size": entry.recipe.input_size, **entry.recipe.defaults, **overrides}
    return entry.builder(**settings)
