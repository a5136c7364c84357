"""How a setting is declared and resolved: `setting()` (a dataclass field carrying its help,
choices and limits), defaults <- YAML <- flags with each value checked against its type, choices
and limits, a settings class's own cross-field rules, and one way to a dict and to JSON.

settings/ declares the jobs' settings with these; nothing here knows any job.
"""

import dataclasses
import json
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from dermspark import DermsparkError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


# PLR0913: a declaration: the help, then keyword-only choices and limits
def setting(  # noqa: PLR0913
    default: Any,
    help: str,
    *,
    choices: tuple = (),
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> Any:
    """A dataclass field that carries its flag's help text, choices and limits (minimum and
    maximum inclusive, above and below exclusive), which resolve() and require() check."""
    metadata = {"help": help, "choices": tuple(choices), "required": False, "limits": (minimum, maximum, above, below)}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def required(help: str) -> Any:
    """A setting without a default: the settings object cannot be made without it."""
    return field(metadata={"help": help, "choices": (), "required": True, "limits": (None,) * 4})


SettingsT = TypeVar("SettingsT", bound="DataclassInstance")


def kinds(cls: type) -> dict[str, type]:
    """Each field's type without its `| None`."""
    result = {}
    for name, hint in typing.get_type_hints(cls).items():
        if isinstance(hint, types.UnionType):
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        result[name] = hint
    return result


def _coerce(name: str, value: Any, kind: type, choices: tuple) -> Any:
    if value is None:
        return None
    if kind is dict:
        if not isinstance(value, dict):
            raise DermsparkError(f"setting {name!r} must be a mapping, got {value!r}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise DermsparkError(f"setting {name!r} must be true or false, got {value!r}")
    if kind is int and isinstance(value, bool):
        raise DermsparkError(f"setting {name!r} must be an integer, got {value!r}")
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise DermsparkError(f"setting {name!r} must be {kind.__name__}, got {value!r}") from None
    if choices and value not in choices:
        raise DermsparkError(f"setting {name!r} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _load_yaml(yaml_path: str) -> dict:
    path = Path(yaml_path)
    if not path.is_file():
        raise DermsparkError(f"settings file {yaml_path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise DermsparkError(f"settings file {yaml_path}{where}: {problem}") from None
    if not isinstance(loaded, dict):
        raise DermsparkError(f"settings file {yaml_path} must hold a mapping of key: value")
    return loaded


def resolve(cls: type[SettingsT], yaml_path: str | None, overrides: dict) -> SettingsT:
    """Defaults <- YAML file <- overrides (flags whose value is not None), each value checked
    against its setting's type, choices and limits, and named by where it came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if yaml_path:
        values.update(_load_yaml(yaml_path))
        sources.update({key: f"{key} (in {yaml_path})" for key in values})
    given = {key: value for key, value in overrides.items() if value is not None}
    values.update(given)
    sources.update({key: "--" + key.replace("_", "-") for key in given})

    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise DermsparkError(f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}; known: {', '.join(fields)}")
    types_ = kinds(cls)
    values = {
        name: _coerce(name, value, types_[name], fields[name].metadata["choices"]) for name, value in values.items()
    }
    for name, value in values.items():
        _check_limit(sources[name], value, fields[name].metadata["limits"])
    _check_given([name for name, item in fields.items() if item.metadata["required"] and not values.get(name)])
    settings = cls(**values)
    _rules(settings)
    return settings


def check_limits(settings: Any) -> None:
    """Every numeric setting of a settings object made in code within its declared limits."""
    for item in dataclasses.fields(settings):
        _check_limit("--" + item.name.replace("_", "-"), getattr(settings, item.name), item.metadata["limits"])


def _check_limit(where: str, value: Any, limits: tuple) -> None:
    """where: the flag, or the key in a settings file, the value came from."""
    minimum, maximum, above, below = limits
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    if minimum is not None and value < minimum:
        raise DermsparkError(f"{where} must be at least {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise DermsparkError(f"{where} must be at most {maximum:g}, got {value:g}")
    if above is not None and value <= above:
        raise DermsparkError(f"{where} must be above {above:g}, got {value:g}")
    if below is not None and value >= below:
        raise DermsparkError(f"{where} must be below {below:g}, got {value:g}")


def require(settings: Any) -> None:
    """What resolve() checks, for a settings object made in code: every required setting has a
    value, every value is within its limits, and the class's own rules hold."""
    _check_given(
        [
            item.name
            for item in dataclasses.fields(settings)
            if item.metadata["required"] and not getattr(settings, item.name)
        ]
    )
    for item in dataclasses.fields(settings):
        value, choices = getattr(settings, item.name), item.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise DermsparkError(f"--{item.name.replace('_', '-')} must be one of {', '.join(choices)}, got {value!r}")
    check_limits(settings)
    _rules(settings)


def _check_given(missing: list[str]) -> None:
    if missing:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
        raise DermsparkError(f"missing required setting(s): {flags}")


def _rules(settings: Any) -> None:
    """The rules between settings that a class declares beside them (its `rules` method)."""
    rules = getattr(settings, "rules", None)
    if rules is not None:
        rules()


def defaults(cls: type) -> dict:
    """Every setting that has a default, with it."""
    found = {}
    for item in dataclasses.fields(cls):
        if item.default is not dataclasses.MISSING:
            found[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            found[item.name] = item.default_factory()
    return found


def to_dict(settings: Any) -> dict:
    return dataclasses.asdict(settings)


def to_json(settings: Any) -> str:
    return json.dumps(to_dict(settings), indent=2, sort_keys=True)
