import pytest
from dermspark import DermsparkError
from dermspark.settings import IngestSettings, TrainSettings, resolve


def test_flags_override_yaml_override_defaults(tmp_path):
    conf = tmp_path / "ingest.yaml"
    conf.write_text("sizes: 90x120\nseed: 7\n")
    settings = resolve(IngestSettings, str(conf), {"seed": 9, "input": "in", "output": None})
    assert (settings.sizes, settings.seed, settings.input, settings.split) == ("90x120", 9, "in", "80/10/10")


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
