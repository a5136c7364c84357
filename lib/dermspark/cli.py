"""Command-line flags generated from a settings dataclass, and the flag reference in docs/.

A setting named `cap_per_class` is the flag `--cap-per-class` and the YAML key `cap_per_class`;
its type, choices and help come from its declaration in settings/JOB.py, so the flags, the YAML
files and docs/ cannot disagree.
"""

import argparse
import dataclasses
import json
import os
import sys

from dermspark.settings.ingest import IngestSettings
from dermspark.settings.monitor import MonitorSettings
from dermspark.settings.score import ScoreSettings
from dermspark.settings.serve import ServeSettings
from dermspark.settings.train import TrainSettings
from dermspark.settings_core import kinds

# Each job's settings, by the name of its docs/JOB.md page (whose flag table is generated).
JOB_SETTINGS = {
    "ingest": IngestSettings,
    "train": TrainSettings,
    "score": ScoreSettings,
    "monitor": MonitorSettings,
    "serve": ServeSettings,
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default_text(field: dataclasses.Field) -> str:
    """A field's default as help and docs show it; '' for none (None, or an empty mapping)."""
    value = None if field.default is dataclasses.MISSING else field.default
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def make_parser(cls: type, prog: str, description: str, default_yaml: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--settings", default=default_yaml, help="YAML file of settings; flags override it")
    types_ = kinds(cls)
    for field in dataclasses.fields(cls):
        kind = types_[field.name]
        options = {"dest": field.name, "default": None, "help": field.metadata["help"]}
        if field.metadata["choices"]:
            options["choices"] = field.metadata["choices"]
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = json.loads if kind is dict else kind
            if not field.metadata["choices"]:
                options["metavar"] = field.name.upper()
        if field.metadata["required"]:
            options["help"] += " (required)"
        default = _default_text(field)
        # Every flag's own default is None (not given), so YAML values are not overridden.
        options["help"] = options["help"].replace("%", "%%") + (f" [default: {default}]" if default else "")
        parser.add_argument(flag(field.name), **options)
    return parser


def parse(cls: type, entry_point: str, description: str, argv: list[str] | None) -> tuple[str | None, dict]:
    """(settings file, overrides) from the command line of jobs/JOB.py, whose settings file is
    conf/JOB.yaml beside it; `--help` lists every setting."""
    job = os.path.splitext(os.path.basename(entry_point))[0]
    default_yaml = os.path.join(os.path.dirname(os.path.abspath(entry_point)), "..", "conf", f"{job}.yaml")
    parser = make_parser(
        cls, f"spark-submit.sh {job}", description, default_yaml if os.path.isfile(default_yaml) else None
    )
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    return args.pop("settings"), args


def flag_table(cls: type) -> str:
    """The Markdown table of a job's flags that docs/ pages carry (tests compare the two)."""
    types_ = kinds(cls)
    lines = ["| flag | type | default | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(cls):
        kind = types_[field.name]
        choices = field.metadata["choices"]
        type_text = " \\| ".join(choices) if choices else "JSON" if kind is dict else kind.__name__
        default = "required" if field.metadata["required"] else (_default_text(field) or "-")
        lines.append(f"| `{flag(field.name)}` | {type_text} | {default} | {field.metadata['help'].replace('|', '/')} |")
    return "\n".join(lines)
