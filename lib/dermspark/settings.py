"""One typed settings object per job: defaults here, then conf/<job>.yaml, then command-line flags.

Unknown keys are errors, so a typo in YAML or a renamed option never passes silently, and the
resolved object is saved next to every dataset, model and scoring run.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dermspark import DermsparkError


@dataclass
class IngestSettings:
    input: str = ""
    output: str = ""
    source: str = "ham10000"
    label_space: str = "ham10000"
    sizes: str = "75x100"  # comma-separated HEIGHTxWIDTH; one dataset each, one decode
    resample: str = "lanczos"
    aspect: str = "stretch"
    split: str = "80/10/10"
    seed: int = 42
    mode: str = "error"
    max_pixels: int = 89_478_485
    # Fail (after writing the rejects) when more than this fraction of inputs is rejected.
    # 1.0 is off: partial archives are normal.
    max_reject_fraction: float = 1.0
    # Several files, each of small row groups, so every Horovod rank gets a shard of its own.
    num_files: int = 0  # 0: about 2,000 images a file, a multiple of the task slots
    row_group_size_mb: int = 4


@dataclass
class TrainSettings:
    dataset: str = ""
    output: str = ""
    model: str = "benbrahim_cnn"
    # 0 (or "") means "the model recipe's value", which is the paper's.
    epochs: int = 0  # of the first stage
    fine_tune_epochs: int = -1  # of the second stage, for two-stage recipes; -1: recipe's, 0: skip it
    batch_size: int = 0  # per process
    learning_rate: float = 0.0  # of the first stage, for one process (scaled by num_proc)
    # Rare classes: "none", or any of class_weights, cap, oversample joined by commas.
    imbalance: str = ""
    cap_per_class: int = 0  # with "cap"; 0: the recipe's, else 450 as Benedetti et al.
    # How each stage ends: "" the recipe's; best (its lowest validation loss) or last epoch.
    stage_end: str = ""
    monitor: str = ""  # "" the recipe's (val_loss); val_loss or val_balanced_accuracy
    # The learning rate within a stage: "" the recipe's; constant; or cosine (after the warmup,
    # down to 0 at the stage's last epoch).
    lr_schedule: str = ""
    # > 0: train with an exponential moving average of the weights at this momentum (e.g. 0.99),
    # which replaces the weights at every epoch's end, so validation, checkpoints and the bundle
    # see the average; 0: plain weights.
    ema: float = 0.0
    weights: str = ""  # pretrained base: none, imagenet (the driver's Keras cache), a file on the driver or a URL
    # Checkpoints go to STORE/RUN_ID every epoch; rerunning with the same run_id resumes there.
    run_id: str = ""  # "": a new run, named by the time it starts
    store: str = ""  # any fsspec URL (file://, hdfs://, s3://); "": OUTPUT.checkpoints, on the same storage
    num_proc: int = 2
    seed: int = 42
    mode: str = "error"
    # Seconds to wait for all Horovod processes to start before failing, instead of hanging
    # when the cluster cannot host num_proc tasks at once.
    start_timeout: int = 120
    # A rank whose training shard is estimated to fit in this many MiB of decoded pixels reads it
    # once and trains every later epoch from memory; 0 always streams from Petastorm.
    cache_mb: int = 2048
    # How often Horovod's background thread looks for gradients ready to reduce (ms). Every look
    # is a message exchange between the ranks: at Horovod's 1 ms it took about a tenth of a
    # 2-core machine's training rate; much longer delays each step's allreduce (bench/).
    cycle_time_ms: float = 10.0
    model_options: dict = field(default_factory=dict)


@dataclass
class ScoreSettings:
    model: str = ""
    input: str = ""
    output: str = ""
    # files: a folder tree of images; parquet: a table with a path (or bytes) column;
    # petastorm: a dataset made by ingest; auto: told apart by what the input holds.
    input_format: str = "auto"
    glob: str = "*"  # file name filter for folders, e.g. *.jpg
    path_column: str = "path"  # parquet inputs
    content_column: str = ""  # parquet inputs holding image bytes; "": read the files at path_column
    split: str = ""  # ingested datasets: score one split only ("": all)
    batch_size: int = 64
    top_k: int = 3
    melanoma_threshold: float = 0.5
    # Skip files whose content already has a row from this model version in the output.
    incremental: bool = False
    labels: str = ""  # HAM10000 metadata or ISIC 2019 ground truth CSV: adds a metrics report
    model_version: str = ""  # "": the bundle's training run id and hash
    mode: str = "error"


@dataclass
class ServeSettings:
    model: str = ""
    # Loopback by default: serving to a network is a choice made with --host.
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 10.0  # larger uploads get 413 before they are read
    # Comma-separated origins whose web pages may call the API; "": none (CORS closed).
    cors_origins: str = ""
    melanoma_threshold: float = 0.5


SettingsT = TypeVar("SettingsT")


def _coerce(name: str, value: Any, kind: type) -> Any:
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
        return kind(value)
    except (TypeError, ValueError):
        raise DermsparkError(f"setting {name!r} must be {kind.__name__}, got {value!r}") from None


def resolve(cls: type[SettingsT], yaml_path: str | None, overrides: dict) -> SettingsT:
    """Defaults <- YAML file <- overrides (flags whose value is not None)."""
    values: dict[str, Any] = {}
    if yaml_path:
        path = Path(yaml_path)
        if not path.is_file():
            raise DermsparkError(f"settings file {yaml_path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise DermsparkError(f"settings file {yaml_path} must hold a mapping of key: value")
        values.update(loaded)
    values.update({key: value for key, value in overrides.items() if value is not None})

    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise DermsparkError(
            f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}; "
            f"known: {', '.join(fields)}"
        )
    kinds = {name: type(f.default) if f.default is not dataclasses.MISSING else dict
             for name, f in fields.items()}
    return cls(**{name: _coerce(name, value, kinds[name]) for name, value in values.items()})


def require(settings: Any, *names: str) -> None:
    missing = [name for name in names if not getattr(settings, name)]
    if missing:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
        raise DermsparkError(f"missing required setting(s): {flags}")


def to_json(settings: Any) -> str:
    return json.dumps(dataclasses.asdict(settings), indent=2, sort_keys=True)
