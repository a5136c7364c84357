"""The two manifests dermspark stores and reads back: a dataset's (what ingest wrote) and a model
bundle's (everything scoring needs to use the model). Each is written last into its folder, so a
reader that finds it finds the whole dataset or bundle.

Manifests written by earlier versions load too: a field they lack takes its default here, and
the document as read stays in `stored`, which is what fingerprints and cache keys hash, so they
do not change when a field is added.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import ClassVar, Self

from dermspark import DermsparkError
from dermspark.settings.common import TEST_TIME_AUGMENTATIONS


class _Stored:
    """to_dict/from_dict/JSON for a frozen record with a `stored` field."""

    # Fields left out of the document while None: absent from files written before they existed.
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        names = [item.name for item in dataclasses.fields(self) if item.name != "stored"]  # type: ignore[arg-type]
        values = {name: getattr(self, name) for name in names}
        return {key: value for key, value in values.items() if value is not None or key not in self.OMITTED_WHEN_NONE}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def document(self) -> dict:
        """The document as stored, or as it would be stored."""
        return self.stored or self.to_dict()  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, values: dict) -> Self:
        known = {item.name for item in dataclasses.fields(cls)} - {"stored"}  # type: ignore[arg-type]
        record = cls(**{key: value for key, value in values.items() if key in known})
        object.__setattr__(record, "stored", values)  # frozen; and not an argument, so replace() drops it
        return record

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, kw_only=True)
class DatasetManifest(_Stored):
    """Counts that reconcile, classes, image folders by size, how pixels were decoded, the split:
    what training, cross-validation and scoring read of an ingested dataset."""

    OMITTED_WHEN_NONE = ("failed",)

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
    grouped_by: dict[str, int] | None = None  # images split by lesion, and alone (by image)
    dicom: dict | None = None
    created_at: str | None = None
    dermspark_version: str | None = None
    # The document as it was read: what a dataset's fingerprint is a hash of, so that datasets
    # written before a field existed keep their fingerprint.
    stored: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def content(self) -> dict:
        """The document as stored (or as it would be), without its timestamp."""
        return {key: value for key, value in self.document().items() if key not in ("created_at", "output")}


@dataclass(frozen=True, kw_only=True)
class BundleManifest(_Stored):
    """A model bundle's manifest.json: the class list, input size, how pixels are decoded and
    scaled, the training settings, the dataset it came from, its metrics, calibration and
    operating point, and the review flag's record. The training driver writes the first fields;
    rank 0 adds what training found (from `reference` on); saving adds the hashes."""

    OMITTED_WHEN_NONE = ("review", "reference")

    model_name: str = ""
    classes: list[str] = field(default_factory=list)
    input_size: list[int] = field(default_factory=list)  # [height, width]
    preprocessing: dict = field(default_factory=dict)  # images.DecodeOptions' record and the pixel format
    positive_class: str | None = None
    test_time_augmentation: str = "none"
    # Fine-tuned from (--init-from): which bundle, and which of its classes each class began as.
    parent: dict | None = None
    training_settings: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    library_versions: dict = field(default_factory=dict)
    created_at: str | None = None
    # What the monitor job compares scoring with: the held-out predictions as scoring gives them.
    reference: dict | None = None
    metrics: dict = field(default_factory=dict)
    # What scoring and serving apply unless told otherwise (--calibration, --melanoma-threshold).
    calibration: dict | None = None
    operating_point: dict | None = None
    training: dict | None = None
    model_sha256: str = ""
    # The review flag's record (dermspark.review); absent in bundles saved without one.
    review: dict | None = None
    # The document as read: what cache keys hash. A changed copy (dataclasses.replace) has none.
    stored: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def height_width(self) -> tuple[int, int]:
        height, width = self.input_size
        return int(height), int(width)

    @property
    def run_id(self) -> str | None:
        """The training run that made it; None for a bundle made outside a training job."""
        return self.training_settings.get("run_id")

    def views(self) -> int:
        """Model passes per image: 4 for a bundle trained with --tta flips (its temperature and
        threshold were fitted on those averaged probabilities), else 1. Scoring's driver and the
        service ask before any image, so a bundle from a later version fails there, in one line."""
        if self.test_time_augmentation not in TEST_TIME_AUGMENTATIONS:
            raise DermsparkError(
                f"the bundle asks for test-time augmentation {self.test_time_augmentation!r}, which this "
                f"version does not know ({', '.join(TEST_TIME_AUGMENTATIONS)}): score it with the version "
                "that trained it"
            )
        return 4 if self.test_time_augmentation == "flips" else 1

    def temperature(self, calibration: str = "temperature") -> float:
        """The temperature predictions use under --calibration: the one training fitted on
        validation (report.calibration), or 1.0 for 'none' and for a bundle from before calibration."""
        if calibration == "none":
            return 1.0
        return float((self.calibration or {}).get("temperature", 1.0))

    def threshold(self, calibration: str) -> float | None:
        """The melanoma threshold training chose for --calibration; None without an operating point."""
        return ((self.operating_point or {}).get("threshold") or {}).get(calibration)
