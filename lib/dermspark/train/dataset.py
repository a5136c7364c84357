"""The ingested dataset as training sees it: its manifest, the folder of one image size, what a
fingerprint of it is, and how many training rows each Horovod rank's shard will hold."""

import hashlib
import json
import re

from dermspark import DermsparkError, storage
from dermspark.manifests import DatasetManifest
from dermspark.storage import join


def read_manifest(dataset_url: str) -> DatasetManifest:
    manifest_url = join(dataset_url, "manifest.json")
    if not storage.exists(manifest_url):
        raise DermsparkError(f"{dataset_url} is not an ingested dataset (no manifest.json): run the ingest job first")
    stored = json.loads(storage.read_text(manifest_url))
    if "model_sha256" in stored:
        raise DermsparkError(f"{dataset_url} is a model bundle, not an ingested dataset: pass ingest's output")
    return DatasetManifest.from_dict(stored)


def pick_size(manifest: DatasetManifest, input_size: tuple[int, int], model: str) -> str:
    wanted = f"{input_size[0]}x{input_size[1]}"
    if wanted not in manifest.datasets:
        raise DermsparkError(
            f"model {model} needs {wanted} images but the dataset has only "
            f"{', '.join(manifest.datasets)}: rerun ingest with --sizes {wanted}"
        )
    return manifest.datasets[wanted]


def check_shards(dataset_url: str, num_proc: int, folds: dict | None = None) -> list[int]:
    """Training rows each rank will read. Petastorm gives row group i to shard i % shard_count
    (its seed only reorders), so this replicates its assignment exactly. A rank whose shard has
    no training row would wait forever on an endless reader, so that is an error here. folds:
    a cross-validation fold's {split: [folds]}, whose training rows are those of its train folds."""
    import pyarrow.parquet as pq
    from petastorm.etl.dataset_metadata import load_row_groups
    from petastorm.fs_utils import get_filesystem_and_path_or_paths

    from dermspark import petastorm_compat

    filesystem, path = get_filesystem_and_path_or_paths(
        dataset_url, filesystem=petastorm_compat.filesystem(dataset_url)
    )
    dataset = pq.ParquetDataset(path, filesystem=filesystem, validate_schema=False)
    pieces = load_row_groups(dataset)
    if len(pieces) < num_proc:
        raise DermsparkError(
            f"the dataset has {len(pieces)} row group(s), fewer than the {num_proc} processes "
            "that each need a shard: re-ingest with a larger --num-files or lower --num-proc"
        )
    column = "fold" if folds else "split"
    training = set(folds["train"]) if folds else {"train"}
    per_shard = [0] * num_proc
    for index, piece in enumerate(pieces):
        with filesystem.open(piece.path) as handle:
            values = pq.ParquetFile(handle).read_row_group(piece.row_group, columns=[column])
        per_shard[index % num_proc] += sum(value in training for value in values.column(column).to_pylist())
    if min(per_shard) == 0:
        raise DermsparkError(
            f"training rows per process would be {per_shard}: a process with none cannot train. "
            "Re-ingest with fewer --num-files (bigger row groups) or lower --num-proc"
        )
    return per_shard


def dataset_fingerprint(root: str, url: str, manifest: DatasetManifest) -> dict:
    """Which dataset, and which version of it: the manifest's content without its timestamp
    (a rerun of ingest on the same input gives the same rows and the same fingerprint)."""
    digest = hashlib.sha256(json.dumps(manifest.content(), sort_keys=True).encode()).hexdigest()
    return {
        "url": url,
        "root": root,
        "manifest_sha256": digest,
        "created_at": manifest.created_at,
        "per_split": manifest.per_split,
    }


def decode_of(manifest: DatasetManifest) -> dict:
    """How a dataset's pixels were made; datasets from before a setting had its default."""
    from dermspark.images import DecodeOptions

    return DecodeOptions.from_record(manifest.decode).recorded()


def external_datasets(
    spec: str | None, training: DatasetManifest, input_size: tuple[int, int], model: str
) -> list[dict]:
    """--external's datasets, each {name, root, url (the model's size), images}, checked before
    anything slow: their classes and pixels must be the training data's, or the figures would
    not be what scoring the same images gives."""
    roots = [part.strip() for part in (spec or "").split(",") if part.strip()]
    found, names = [], set()
    for root in map(storage.to_url, roots):
        manifest = read_manifest(root)
        if manifest.classes != training.classes:
            raise DermsparkError(
                f"--external {root} has classes {manifest.classes}, the training data "
                f"{training.classes}: ingest it with the same --label-space"
            )
        if decode_of(manifest) != decode_of(training):
            raise DermsparkError(
                f"--external {root} was decoded with {decode_of(manifest)}, the training data with "
                f"{decode_of(training)}: ingest it with the same settings, as scoring would decode"
            )
        if not manifest.written:
            raise DermsparkError(f"--external {root} holds no image")
        # A file name and an MLflow metric key.
        name = re.sub(r"[^A-Za-z0-9._-]", "_", root.rstrip("/").rsplit("/", 1)[-1]) or "external"
        while name in names:
            name += "_"
        names.add(name)
        found.append(
            {
                "name": name,
                "root": root,
                "url": join(root, pick_size(manifest, input_size, model)),
                "images": manifest.written,
            }
        )
    return found
