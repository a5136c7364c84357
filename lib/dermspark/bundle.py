"""A model bundle: the Keras model plus a manifest saying everything scoring needs.

Layout: <dir>/model.keras, <dir>/manifest.json. Nothing is implicit: class list, input size,
how pixels are decoded and scaled, the training settings, the dataset it came from, its metrics.
A bundle lives on any store (storage.py) or in MLflow's registry (tracking.registry resolves a
models:/ URI to its artifact location); a machine that loads one from anywhere but its own disk
keeps a copy in a local cache named by the model's hash.
"""

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dermspark import DermsparkError, commit, storage
from dermspark.manifests import BundleManifest
from dermspark.models.keras_file import load_keras
from dermspark.tracking import registry

if TYPE_CHECKING:
    from dermspark.review import Reviewer

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
CARD_FILE = "MODEL_CARD.md"
MANIFEST_FILE = "manifest.json"


@dataclass
class Bundle:
    model: Any  # a tf.keras.Model
    manifest: BundleManifest
    path: str
    # The review flag's fitted detector and checks, None for a bundle without.
    reviewer: "Reviewer | None" = None
    _predict: Any = field(default=None, repr=False)  # the compiled tf.function
    _grad_cam: Any = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def decode_options(self):
        from dermspark.images import DecodeOptions

        return DecodeOptions.from_record(self.manifest.preprocessing)

    @property
    def temperature(self) -> float:
        return self.manifest.temperature()

    @property
    def input_size(self) -> tuple[int, int]:
        return self.manifest.height_width

    @property
    def views(self) -> int:
        return self.manifest.views()

    def predict(self, images, temperature: float = 1.0):
        """uint8 RGB images (n, height, width, 3) -> probabilities (n, classes), float32, scaled
        by the temperature (report.calibration), which changes no predicted class. With the
        bundle's test-time augmentation, the mean over the image's flips."""
        return _scaled(self.infer(images)[0], temperature)

    def predict_reviewed(self, images, temperature: float = 1.0, confidence: float | None = None):
        """(probabilities as predict gives them, the review flag's (ood_score, review, reason)
        arrays, or None for a bundle without one): one model pass for both."""
        raw, features = self.infer(images)
        probabilities = _scaled(raw, temperature)
        if self.reviewer is None:
            return probabilities, None
        return probabilities, self.reviewer.review(images, features, raw, probabilities, confidence)

    def infer(self, images):
        """(probabilities before any temperature, penultimate features), both float32 and, with
        test-time flips, averaged over the flips: what the review flag's detectors read.

        One compiled function for every batch size, traced once. Keras' `predict_on_batch` builds
        a tf.data iterator on every call, whose threads hand each batch back and forth: with two
        Spark workers on two cores that left a fifth of the machine idle (docs/benchmarks.md)."""
        if self._predict is None:
            self._predict = _compiled_forward(self.model, self.views, self.input_size)
        probabilities, features = self._predict(np.asarray(images, dtype=np.uint8))
        return np.asarray(probabilities, dtype=np.float32), np.asarray(features, dtype=np.float32)

    def explain(self, images, classes):
        """Grad-CAM heatmaps (n, height, width) in [0, 1] of the given classes (dermspark.explain)."""
        if self._grad_cam is None:
            from dermspark.explain import GradCam

            self._grad_cam = GradCam(self.model, self.input_size)
        return self._grad_cam(images, classes)


def _scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    if temperature == 1.0:
        return probabilities
    from dermspark.report.calibration import apply_temperature

    return apply_temperature(probabilities, temperature).astype(np.float32)


def _compiled_forward(model, views: int, input_size: tuple[int, int]):
    """The model's softmax and the input of its last layer (every registered model ends in one
    Dense softmax) from one call, with the flips stacked into one batch."""
    import tensorflow as tf

    both = tf.keras.Model(model.inputs, [model.output, model.layers[-1].input])

    def forward(batch):
        if views == 1:
            return both(batch, training=False)
        # A dermatoscopic image has no up or left: each flip is as likely an image of the lesion.
        flipped = tf.concat([batch, tf.reverse(batch, [2]), tf.reverse(batch, [1]), tf.reverse(batch, [1, 2])], axis=0)
        outputs = both(flipped, training=False)
        return tuple(tf.reduce_mean(tf.reshape(output, [views, tf.shape(batch)[0], -1]), axis=0) for output in outputs)

    return tf.function(forward, input_signature=[tf.TensorSpec((None, *input_size, 3), tf.uint8)])


def model_version(manifest: BundleManifest, override: str = "") -> str:
    """The training run id and the start of the bundle hash: readable, and exact. A registered
    model's is NAME/VERSION (the override)."""
    version = override or "-".join(part for part in (manifest.run_id, manifest.model_sha256[:8]) if part)
    if not re.fullmatch(r"[A-Za-z0-9._-]+(/[0-9]+)?", version):
        raise DermsparkError(
            f"model version {version!r} may hold only letters, digits, '.', '_' and '-' "
            "(and /VERSION after a registered model's name)"
        )
    return version


def cache_root() -> str:
    """Where workers keep fetched bundles: this machine's own disk, one folder per bundle hash."""
    return os.environ.get("DERMSPARK_BUNDLE_CACHE") or os.path.join(tempfile.gettempdir(), "dermspark-bundles")


def save_bundle(
    url: str, model, manifest: BundleManifest, staged: bool = True, reviewer=None, texts: dict[str, str] | None = None
) -> str:
    """Saves to a local folder first, then puts it at url through the storage layer: staged and
    committed whole (staged=False: url is inside an output that is itself staged). A reviewer
    (dermspark.review) goes beside the model, its record and hash in the manifest's `review`;
    texts: other files by name (the model card)."""
    with tempfile.TemporaryDirectory(prefix="dermspark-bundle-") as local:
        model.save(os.path.join(local, MODEL_FILE))
        for name, text in (texts or {}).items():
            with open(os.path.join(local, name), "w") as handle:
                handle.write(text)
        review = None  # a bundle saved without a reviewer has none
        if reviewer is not None:
            from dermspark.review import FILE

            with open(os.path.join(local, FILE), "wb") as handle:
                handle.write(reviewer.to_npz())
            review = {**reviewer.record, "file": FILE, "sha256": _sha256(os.path.join(local, FILE))}
        manifest = dataclasses.replace(manifest, model_sha256=_sha256(os.path.join(local, MODEL_FILE)), review=review)
        with open(os.path.join(local, MANIFEST_FILE), "w") as handle:
            json.dump(manifest.to_dict(), handle, indent=2, sort_keys=True)
        target = storage.to_url(url)
        if not staged:
            storage.put_tree(local, target)
            return target
        with commit.staged_output(target) as staging:
            storage.put_tree(local, staging)
    return target


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(url: str, tracking_uri: str | None = None) -> BundleManifest:
    """url: a bundle folder on any store, or an MLflow artifact location (with its server)."""
    try:
        if registry.is_mlflow_location(url):
            return BundleManifest.from_json(registry.read_text(f"{url}/{MANIFEST_FILE}", tracking_uri))
        manifest = json.loads(storage.read_text(storage.join(storage.to_url(url), MANIFEST_FILE)))
    except FileNotFoundError:
        if storage.exists(storage.join(storage.to_url(url), "model", MANIFEST_FILE)):
            raise DermsparkError(
                f"{url} is a training output, not a model bundle: its bundle is {storage.join(url, 'model')}"
            ) from None
        raise DermsparkError(f"{url} is not a model bundle: {MANIFEST_FILE} is missing") from None
    if "datasets" in manifest and "model_sha256" not in manifest:
        raise DermsparkError(
            f"{url} is an ingested dataset, not a model bundle: pass a training output's model/ folder"
        )
    return BundleManifest.from_dict(manifest)


def cache_key(manifest: BundleManifest) -> str:
    """The name of a bundle's cached copy: the hash of its whole manifest, which holds the model's
    hash. Not the model's hash alone: the same weights with another manifest (temperature,
    threshold, test-time flips) are another bundle, and a cache named by the weights served the
    first one's manifest to the second."""
    return hashlib.sha256(json.dumps(manifest.document(), sort_keys=True).encode()).hexdigest()


def local_copy(url: str, manifest: BundleManifest | None = None, tracking_uri: str | None = None) -> str:
    """A local folder holding the bundle: the folder itself when it is local, else this machine's
    cached copy, named by cache_key and fetched only when missing. The copy is checked against
    the model's hash and renamed into place whole, so workers sharing the cache never load a
    half-fetched bundle."""
    in_mlflow = registry.is_mlflow_location(url)
    path = None if in_mlflow else storage.local_path(storage.to_url(url))
    if path is not None:
        read_manifest(url)  # a dataset or a training output given for a bundle: one line
        return path
    manifest = manifest or read_manifest(url, tracking_uri)
    digest, key = manifest.model_sha256, cache_key(manifest)
    cached = os.path.join(cache_root(), key)
    if os.path.isfile(os.path.join(cached, MANIFEST_FILE)):
        return cached
    os.makedirs(cache_root(), exist_ok=True)
    fetching = tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=cache_root())
    try:
        if in_mlflow:
            registry.fetch(url, tracking_uri, fetching)
        else:
            storage.get_tree(storage.to_url(url), fetching)
        if _sha256(os.path.join(fetching, MODEL_FILE)) != digest:
            raise DermsparkError(f"{url}: {MODEL_FILE} does not match its manifest's model_sha256")
        with open(os.path.join(fetching, MANIFEST_FILE)) as handle:
            if json.load(handle) != manifest.document():  # rewritten between the two reads: the key would lie
                raise DermsparkError(f"{url}: {MANIFEST_FILE} changed while the bundle was fetched; try again")
        try:
            os.rename(fetching, cached)
        except OSError:
            if not os.path.isfile(os.path.join(cached, MANIFEST_FILE)):
                raise
            # Another worker of this machine put the same bundle there first.
    finally:
        shutil.rmtree(fetching, ignore_errors=True)
    log.info("bundle %s fetched into %s", url, cached)
    return cached


def load_bundle(url: str, tracking_uri: str | None = None) -> Bundle:
    folder = local_copy(url, tracking_uri=tracking_uri)
    with open(os.path.join(folder, MANIFEST_FILE)) as handle:
        manifest = BundleManifest.from_json(handle.read())
    return Bundle(
        model=load_keras(os.path.join(folder, MODEL_FILE)),
        manifest=manifest,
        path=url,
        reviewer=load_reviewer(folder, manifest, url),
    )


def load_reviewer(folder: str, manifest: BundleManifest, url: str = ""):
    """The bundle's review flag, None for a bundle from before it (its rows' review stays null)."""
    record = manifest.review
    if not record:
        return None
    from dermspark.review import Reviewer

    try:
        with open(os.path.join(folder, record["file"]), "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise DermsparkError(f"{url or folder}: the manifest names {record['file']}, which is missing") from None
    if hashlib.sha256(content).hexdigest() != record["sha256"]:
        raise DermsparkError(f"{url or folder}: {record['file']} does not match its manifest's review sha256")
    return Reviewer.from_npz(record, content)
