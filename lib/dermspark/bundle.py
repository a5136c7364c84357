"""A model bundle: the Keras model plus a manifest saying everything scoring needs.

Layout: <dir>/model.keras, <dir>/manifest.json. Nothing is implicit: class list, input size,
how pixels are decoded and scaled, the training settings, the dataset it came from, its metrics.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass

from dermspark import DermsparkError
from dermspark.storage import local_path

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"


@dataclass
class Bundle:
    model: object
    manifest: dict
    path: str

    @property
    def classes(self) -> list[str]:
        return self.manifest["classes"]

    @property
    def decode_options(self):
        from dermspark.images import DecodeOptions

        preprocessing = self.manifest["preprocessing"]
        return DecodeOptions(resample=preprocessing["resample"], aspect=preprocessing["aspect"])

    @property
    def input_size(self) -> tuple[int, int]:
        height, width = self.manifest["input_size"]
        return int(height), int(width)


def model_version(manifest: dict, override: str = "") -> str:
    """The training run id and the start of the bundle hash: readable, and exact."""
    version = override or "-".join(
        part for part in (manifest.get("training_settings", {}).get("run_id"), manifest["model_sha256"][:8]) if part
    )
    if not re.fullmatch(r"[A-Za-z0-9._-]+", version):
        raise DermsparkError(f"model version {version!r} may hold only letters, digits, '.', '_' and '-'")
    return version


def _target_dir(url: str) -> str:
    path = local_path(url)
    if path is None:
        raise DermsparkError(f"bundles are saved to and loaded from local paths for now, not {url}")
    return path


def save_bundle(url: str, model, manifest: dict) -> str:
    """Write to a sibling temporary folder, then rename: readers never see half a bundle."""
    target = _target_dir(url)
    parent = os.path.dirname(target) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".bundle-", dir=parent)
    try:
        model.save(os.path.join(staging, MODEL_FILE))
        with open(os.path.join(staging, MODEL_FILE), "rb") as handle:
            model_hash = hashlib.sha256(handle.read()).hexdigest()
        manifest = {**manifest, "model_sha256": model_hash}
        with open(os.path.join(staging, MANIFEST_FILE), "w") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_manifest(url: str) -> dict:
    path = os.path.join(_target_dir(url), MANIFEST_FILE)
    if not os.path.isfile(path):
        raise DermsparkError(f"{url} is not a model bundle: {MANIFEST_FILE} is missing")
    with open(path) as handle:
        return json.load(handle)


def load_bundle(url: str) -> Bundle:
    from tensorflow import keras

    import dermspark.models.layers  # noqa: F401  registers the layers a bundle may name

    manifest = read_manifest(url)
    model = keras.models.load_model(os.path.join(_target_dir(url), MODEL_FILE), compile=False)
    return Bundle(model=model, manifest=manifest, path=url)
