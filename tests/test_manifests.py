"""Manifests written by earlier versions load as the typed records, and what a manifest is
fingerprinted by does not change with the record's fields."""

import hashlib
import json
from pathlib import Path

import pytest
from dermspark.manifests import DatasetManifest
from dermspark.train.dataset import dataset_fingerprint, decode_of, pick_size

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
