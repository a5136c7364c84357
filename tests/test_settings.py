import dataclasses
import os

import pytest
import yaml
from dermspark import DermsparkError
from dermspark.cli import parse
from dermspark.settings.ingest import IngestSettings
from dermspark.settings.monitor import MonitorSettings
from dermspark.settings.score import ScoreSettings
from dermspark.settings.serve import ServeSettings
from dermspark.settings.train import TrainSettings
from dermspark.settings_core import require, resolve


def test_flags_override_yaml_override_defaults(tmp_path):
    conf = tmp_path / "ingest.yaml"
    conf.write_text("sizes: 90x120\nseed: 7\noutput: out\n")
    settings = resolve(IngestSettings, str(conf), {"seed": 9, "input": "in", "output": None})
    assert (settings.sizes, settings.seed, settings.input, settings.split) == ("90x120", 9, "in", "80/10/10")
    assert settings.output == "out"  # a flag not given leaves the file's value


def test_unknown_keys_are_errors(tmp_path):
    conf = tmp_path / "train.yaml"
    conf.write_text("epoch: 3\n")
    with pytest.raises(DermsparkError, match="unknown setting.*epoch"):
        resolve(TrainSettings, str(conf), {})


def test_wrong_types_are_errors():
    with pytest.raises(DermsparkError, match="num_proc"):
        resolve(TrainSettings, None, {"num_proc": "two"})


def test_missing_settings_file_is_an_error(tmp_path):
    with pytest.raises(DermsparkError, match="does not exist"):
        resolve(TrainSettings, str(tmp_path / "nope.yaml"), {})


JOBS = {"ingest": IngestSettings, "train": TrainSettings, "score": ScoreSettings, "serve": ServeSettings}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_every_setting_is_a_flag_and_flags_leave_yaml_alone(job):
    cls = JOBS[job]
    settings_file, overrides = parse(cls, f"jobs/{job}.py", "", [])
    assert settings_file.endswith(f"conf/{job}.yaml")
    # A flag not given is None, so the YAML's value (or the default) stands.
    assert overrides == {field.name: None for field in dataclasses.fields(cls)}


def test_flags_take_their_type_choices_and_bool_form_from_the_declaration():
    _, overrides = parse(
        TrainSettings,
        "jobs/train.py",
        "",
        [
            "--epochs",
            "3",
            "--learning-rate",
            "0.01",
            "--model-options",
            '{"dropout": 0.3}',
            "--monitor",
            "val_balanced_accuracy",
        ],
    )
    assert (overrides["epochs"], overrides["learning_rate"], overrides["model_options"], overrides["monitor"]) == (
        3,
        0.01,
        {"dropout": 0.3},
        "val_balanced_accuracy",
    )
    assert parse(ScoreSettings, "jobs/score.py", "", ["--incremental"])[1]["incremental"] is True
    assert parse(ScoreSettings, "jobs/score.py", "", ["--no-incremental"])[1]["incremental"] is False
    with pytest.raises(SystemExit):
        parse(TrainSettings, "jobs/train.py", "", ["--monitor", "val_auc"])


@pytest.mark.parametrize("job", sorted(JOBS))
def test_conf_yaml_holds_only_valid_settings_that_differ_from_the_defaults(job):
    path = os.path.join(os.path.dirname(__file__), "..", "conf", f"{job}.yaml")
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    required = {field.name: "given" for field in dataclasses.fields(JOBS[job]) if field.metadata["required"]}
    resolve(JOBS[job], path, required)  # every key known, every value valid
    defaults = {field.name: field.default for field in dataclasses.fields(JOBS[job])}
    assert not [key for key, value in values.items() if defaults[key] == value]


def test_values_outside_the_choices_are_errors_from_yaml_too(tmp_path):
    conf = tmp_path / "ingest.yaml"
    conf.write_text("aspect: squash\n")
    with pytest.raises(DermsparkError, match="'aspect' must be one of stretch, crop, got 'squash'"):
        resolve(IngestSettings, str(conf), {})


def test_required_settings_are_named_as_flags():
    with pytest.raises(DermsparkError, match="missing required setting.*--dataset, --output"):
        resolve(TrainSettings, None, {})
    with pytest.raises(DermsparkError, match="missing required setting.*--output"):
        require(TrainSettings(dataset="d", output=""))
    require(TrainSettings(dataset="d", output="o"))


def test_a_malformed_settings_file_is_one_line_with_its_line_and_column(tmp_path):
    conf = tmp_path / "train.yaml"
    conf.write_text("epochs: 3\nbatch_size: [16\nmodel: x\n")
    with pytest.raises(DermsparkError) as raised:
        resolve(TrainSettings, str(conf), {})
    assert str(raised.value).startswith(f"settings file {conf}, line 3, column ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("job", "key", "value", "message"),
    [
        ("train", "epochs", -3, "must be at least 1, got -3"),
        ("train", "num_proc", 0, "must be at least 1, got 0"),
        ("train", "learning_rate", 0.0, "must be above 0, got 0"),
        ("ingest", "folds", -1, "must be at least 0, got -1"),
        ("score", "top_k", 0, "must be at least 1, got 0"),
        ("serve", "port", 99999, "must be at most 65535, got 99999"),
    ],
)
def test_values_out_of_limits_are_named_by_where_they_came_from(tmp_path, job, key, value, message):
    conf = tmp_path / f"{job}.yaml"
    conf.write_text(yaml.safe_dump({key: value}))
    with pytest.raises(DermsparkError, match=f"^{key} \\(in {conf}\\) {message}$"):
        resolve(JOBS[job], str(conf), {})
    with pytest.raises(DermsparkError, match=f"^--{key.replace('_', '-')} {message}$"):
        resolve(JOBS[job], None, {key: value})


def test_a_negative_epoch_count_stops_the_job_before_spark_starts(tmp_path):
    """jobs/train.py given -3 epochs in a settings file: one line naming the file, no Spark."""
    import subprocess
    import sys

    from conftest import ROOT

    conf = tmp_path / "train.yaml"
    conf.write_text("epochs: -3\n")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "train.py"),
            "--settings",
            str(conf),
            "--dataset",
            str(tmp_path),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert f"epochs (in {conf}) must be at least 1, got -3" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr and "SparkContext" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (IngestSettings, {"folds": 1}, "--folds needs at least 2 folds"),
        (TrainSettings, {"fold": 1}, "--fold needs --cv K"),
        (TrainSettings, {"cv": 2}, "--cv needs at least 3 folds"),
        (TrainSettings, {"cv": 3, "fold": 3}, "--fold must be within 0 to 2, got 3"),
        (TrainSettings, {"cv": 3, "register": "lesions"}, "--register takes one model"),
        (ScoreSettings, {"incremental": True, "mode": "overwrite"}, "pick one"),
        (ServeSettings, {"tls_certfile": "cert.pem"}, "--tls-certfile and --tls-keyfile go together"),
        (MonitorSettings, {"since": "5 Nov"}, "--since must be a date, YYYY-MM-DD"),
    ],
)
def test_rules_between_settings_are_checked_when_they_are_resolved(cls, values, message):
    """Before any Spark session: resolve() alone, as the job runner calls it first."""
    given = {"input": "i", "output": "o", "dataset": "d", "model": "m", "predictions": "p"}
    given = {key: value for key, value in given.items() if key in {f.name for f in dataclasses.fields(cls)}}
    with pytest.raises(DermsparkError, match=message):
        resolve(cls, None, {**given, **values})
    resolve(cls, None, given)
