"""The dataset manifest: what ingest wrote (counts that reconcile, classes, image folders by
size, how pixels were decoded, the split) and what training, cross-validation and scoring read
of it. Written last into the dataset, so a reader that finds it finds the whole dataset.

Manifests written by earlier versions load too: a field they lack takes its default here.
"""

import dataclasses
import json
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class DatasetManifest:
    inputs: int = 0
    written: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    per_class: dict[str, int] = field(default_factory=dict)
    per_split: dict[str, dict[str, int]] = field(default_factory=dict)
    folds: int = 0
    # Images per fold and class, what train --cv plans each fold's training from.
    per_fold: dict[str, dict[str, int]] | None = None
    # Why no dataset was written (too many rejects); absent from the file otherwise.
    failed: str | None = None
    source: str = ""
    label_space: str = ""
    classes: list[str] = field(default_factory=list)
    datasets: dict[str, str] = field(default_factory=dict)  # "HxW" -> its folder
    decode: dict = field(default_factory=dict)
    codec: str = "png"
    split_ratios: dict[str, float] = field(default_factory=dict)
    age: dict = field(default_factory=dict)
    seed: int | None = None
    grouped_by: str | None = None
    dicom: dict | None = None
    created_at: str | None = None
    dermspark_version: str | None = None
    # The document as it was read: what a dataset's fingerprint is a hash of, so that datasets
    # written before a field existed keep their fingerprint.
    stored: dict = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict:
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self) if item.name != "stored"}
        if values["failed"] is None:
            del values["failed"]
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict) -> "DatasetManifest":
        known = {item.name for item in dataclasses.fields(cls)} - {"stored"}
        return cls(**{key: value for key, value in values.items() if key in known}, stored=values)

    @classmethod
    def from_json(cls, text: str) -> "DatasetManifest":
        return cls.from_dict(json.loads(text))

    def content(self) -> dict:
        """The document as stored (or as it would be), without its timestamp."""
        return {
            key: value for key, value in (self.stored or self.to_dict()).items() if key not in ("created_at", "output")
        }
