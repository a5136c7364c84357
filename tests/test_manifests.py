"""Manifests written by earlier versions load as the typed records, and what a manifest is
fingerprinted by does not change with the record's fields. tests/manifests holds documents the
code wrote before the records existed: datasets of 2026-12-04 (before DICOM) and 2026-12-05, a
cross-validation fold's bundle of 2026-12-04 (before the review flag and the monitor's
reference) and the end-to-end test's bundle of 2026-12-05."""

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from dermspark import DermsparkError
from dermspark.bundle import cache_key, model_version
from dermspark.manifests import BundleManifest, DatasetManifest
from dermspark.report.model_card import model_card
from dermspark.score.predict import output_settings
from dermspark.train.dataset import dataset_fingerprint, decode_of, pick_size
from dermspark.train.worker_config import StagePlan, TrainPlan

WRITTEN = Path(__file__).parent / "manifests"


@pytest.mark.parametrize("name", ["dataset-2026-12-04.json", "dataset-2026-12-05.json"])
def test_dataset_manifests_written_before_load(name):
    text = (WRITTEN / name).read_text()
    stored = json.loads(text)
    manifest = DatasetManifest.from_json(text)
    assert manifest.written + manifest.rejected == manifest.inputs == stored["inputs"]
    assert manifest.per_split == stored["per_split"] and manifest.classes == stored["classes"]
    assert pick_size(manifest, (75, 100), "m") == "images_75x100"
    assert decode_of(manifest)["resample"] == stored["decode"]["resample"]
    # The fingerprint is the stored document's, so a run resumed on an old dataset matches it.
    content = {key: value for key, value in stored.items() if key != "created_at"}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    assert dataset_fingerprint("root", "url", manifest)["manifest_sha256"] == digest


def test_a_manifest_of_today_writes_back_as_it_was_read():
    text = (WRITTEN / "dataset-2026-12-05.json").read_text()
    manifest = DatasetManifest.from_json(text)
    assert json.loads(manifest.to_json()) == json.loads(text)
    assert list(json.loads(manifest.to_json())) == list(json.loads(text))  # and in the same order
    assert manifest.dicom == {"extra_frames": 0, "labels_from": {"csv": 250}, "grouped_by": {"lesion": 250}}


def test_fields_a_manifest_lacks_take_their_defaults():
    older = DatasetManifest.from_json((WRITTEN / "dataset-2026-12-04.json").read_text())
    assert older.dicom is None and older.failed is None and "failed" not in older.to_dict()
    with pytest.raises(AttributeError):
        older.written = 0  # frozen


@pytest.mark.parametrize("name", ["bundle-2026-12-04.json", "bundle-2026-12-05.json"])
def test_bundle_manifests_written_before_load(name):
    text = (WRITTEN / name).read_text()
    stored = json.loads(text)
    manifest = BundleManifest.from_json(text)
    assert manifest.classes == stored["classes"] and manifest.height_width == tuple(stored["input_size"])
    assert manifest.views() == (4 if stored["test_time_augmentation"] == "flips" else 1)
    temperature, threshold = output_settings(manifest, "temperature", None)
    assert temperature == stored["calibration"]["temperature"]
    assert threshold == stored["operating_point"]["threshold"]["temperature"]
    assert output_settings(manifest, "none", None)[0] == 1.0
    version = model_version(manifest)
    assert version == f"{stored['training_settings']['run_id']}-{stored['model_sha256'][:8]}"
    assert f"# Model card: {stored['model_name']}" in model_card(manifest, {})
    # Workers name their cached copy by the stored document's hash, as before the record.
    digest = hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()
    assert cache_key(manifest) == digest


def test_a_bundle_manifest_of_today_writes_back_as_it_was_read():
    text = (WRITTEN / "bundle-2026-12-05.json").read_text()
    manifest = BundleManifest.from_json(text)
    written = json.dumps(manifest.to_dict(), indent=2, sort_keys=True)  # as save_bundle writes it
    assert json.loads(written) == json.loads(text)
    assert manifest.review["method"] == "mahalanobis" and manifest.reference["split"] == "validation"


def test_a_bundle_from_before_the_flag_has_none_and_a_changed_copy_its_own_key():
    older = BundleManifest.from_json((WRITTEN / "bundle-2026-12-04.json").read_text())
    assert older.review is None and older.reference is None and older.parent is None
    assert "review" not in older.to_dict() and "reference" not in older.to_dict()
    # A copy with another temperature is another bundle: its key is its own document's.
    changed = dataclasses.replace(older, calibration={**older.calibration, "temperature": 2.0})
    assert changed.stored == {} and changed.temperature() == 2.0
    assert cache_key(changed) != cache_key(older)
    later = dataclasses.replace(older, test_time_augmentation="rotations")
    with pytest.raises(DermsparkError, match="'rotations'"):
        later.views()


@pytest.mark.parametrize("name", ["bundle-2026-12-04.json", "bundle-2026-12-05.json"])
def test_the_training_plan_a_bundle_stored_loads_as_the_record(name):
    stored = json.loads((WRITTEN / name).read_text())["training_settings"]["plan"]
    plan = TrainPlan.from_dict(stored)
    assert all(isinstance(stage, StagePlan) for stage in plan.stages)
    assert [stage.epochs for stage in plan.stages] == [stage["epochs"] for stage in stored["stages"]]
    assert plan.steps_per_epoch == stored["steps_per_epoch"]
    assert TrainPlan.from_json(plan.to_json()) == plan
    if "label_smoothing" in stored:  # today's: back to JSON as it was stored
        assert json.loads(plan.to_json()) == stored
    else:  # stored before label smoothing and fine-tuning: what it trained with
        assert plan.label_smoothing == 0.0 and [stage.trainable for stage in plan.stages] == [None]
