"""The storage layer on a local disk and on S3 (moto's server on 127.0.0.1): staged outputs
committed whole, markers last on object stores, bundles and weights fetched once per machine."""

import json
import os

import pytest
from conftest import s3_filesystem
from dermspark import DermsparkError, commit, storage


def test_staged_output_appears_whole_or_not_at_all(root):
    final = storage.join(root, "out")
    with commit.staged_output(final) as staging:
        storage.write_text(storage.join(staging, "manifest.json"), "{}")
        storage.write_text(storage.join(staging, "a", "b.txt"), "b")
        assert not storage.exists(final)
    assert storage.read_text(storage.join(final, "a", "b.txt")) == "b"
    assert storage.glob(root, ".out.tmp-*") == []

    with pytest.raises(RuntimeError), commit.staged_output(storage.join(root, "failed")) as staging:
        storage.write_text(storage.join(staging, "x.txt"), "x")
        raise RuntimeError("the job failed")
    assert storage.glob(root, "*") == ["out"] and storage.glob(root, ".*") == []


def test_a_second_commit_replaces_the_first(root):
    final = storage.join(root, "out")
    for content in ("first", "second"):
        with commit.staged_output(final) as staging:
            storage.write_text(storage.join(staging, f"{content}.txt"), content)
    assert storage.glob(final, "*") == ["second.txt"]


def test_object_store_commits_copy_every_manifest_last(s3_store, monkeypatch, tmp_path):
    """Readers open manifest.json first, so it must arrive after the files it describes: the
    order move() copies in (S3's LastModified, to the second, is too coarse to show it), then
    every object at its new key and none left at the old."""
    for name, value in s3_store.items():
        monkeypatch.setenv(name, value)
    local = tmp_path / "tree"
    for name in ("manifest.json", "model/manifest.json", "model/model.keras", "z.txt", "a.txt"):
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_text(name)
    assert storage._ordered(
        [os.path.relpath(path, local) for path in map(str, local.rglob("*")) if os.path.isfile(path)]
    ) == ["a.txt", "model/model.keras", "z.txt", "model/manifest.json", "manifest.json"]
    url = f"s3://dermspark/order-{tmp_path.name}"
    storage.put_tree(str(local), url + "/staging")
    storage.move(url + "/staging", url + "/final")
    s3 = s3_filesystem(s3_store)
    assert sorted(path.split("/final/")[1] for path in s3.find(f"dermspark/order-{tmp_path.name}/final")) == [
        "a.txt",
        "manifest.json",
        "model/manifest.json",
        "model/model.keras",
        "z.txt",
    ]
    assert not s3.exists(f"dermspark/order-{tmp_path.name}/staging")


def test_prepare_output_refuses_an_existing_output(root):
    storage.write_text(storage.join(root, "out", "x"), "x")
    commit.mark(storage.join(root, "out"), "ingest")
    with pytest.raises(DermsparkError, match="already exists"):
        commit.prepare_output(storage.join(root, "out"), "error", "ingest")
    commit.prepare_output(storage.join(root, "out"), "overwrite", "ingest")
    commit.prepare_output(storage.join(root, "new"), "error", "ingest")
    with pytest.raises(DermsparkError, match="holds an ingested dataset; train writes a training output"):
        commit.prepare_output(storage.join(root, "out"), "overwrite", "train")


def test_an_unknown_protocol_is_one_clear_error():
    with pytest.raises(DermsparkError, match="cannot reach nosuch://bucket/x"):
        storage.exists("nosuch://bucket/x")


def test_bundle_on_s3_is_fetched_once_into_the_hash_named_cache(root, tmp_path, monkeypatch):
    import dataclasses

    import numpy as np
    from dermspark.bundle import cache_key, load_bundle, local_copy, read_manifest, save_bundle
    from dermspark.manifests import BundleManifest
    from dermspark.models import create_model

    monkeypatch.setenv("DERMSPARK_BUNDLE_CACHE", str(tmp_path / "cache"))
    model = create_model("benbrahim_cnn")
    url = save_bundle(storage.join(root, "bundle"), model, BundleManifest(model_name="benbrahim_cnn", classes=["a"]))
    manifest = read_manifest(url)
    digest = manifest.model_sha256
    images = np.zeros((1, 75, 100, 3), dtype="uint8")
    first = load_bundle(url)
    np.testing.assert_allclose(first.model.predict_on_batch(images), model.predict_on_batch(images), atol=1e-6)
    if root.startswith("file:"):
        assert not (tmp_path / "cache").exists()  # a local bundle is loaded where it is
        return
    assert sorted(os.listdir(tmp_path / "cache")) == [cache_key(manifest)]
    # The same weights with another manifest (here another temperature) are another bundle:
    # fetched on their own, the cached copy of the first does not answer for them.
    other = storage.join(root, "recalibrated")
    storage.put_tree(str(tmp_path / "cache" / cache_key(manifest)), other)
    storage.write_text(
        storage.join(other, "manifest.json"), json.dumps({**manifest.stored, "calibration": {"temperature": 2.0}})
    )
    assert load_bundle(other).temperature == 2.0
    assert load_bundle(url).temperature == 1.0
    assert len(os.listdir(tmp_path / "cache")) == 2
    # A manifest rewritten between its first read and the fetch is refused, nothing cached.
    with pytest.raises(DermsparkError, match="changed while"):
        local_copy(url, BundleManifest.from_dict({**manifest.stored, "classes": ["b"]}))
    assert len(os.listdir(tmp_path / "cache")) == 2
    # The second load reads the cached copy: it works with the remote model gone.
    storage.delete(storage.join(url, "model.keras"))
    assert load_bundle(url).manifest.model_sha256 == digest
    assert dataclasses.replace(manifest).to_dict() == manifest.stored  # read back key for key


def test_a_fetched_bundle_that_does_not_match_its_hash_is_refused(s3_store, monkeypatch, tmp_path):
    from dermspark.bundle import local_copy

    for name, value in s3_store.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DERMSPARK_BUNDLE_CACHE", str(tmp_path / "cache"))
    url = f"s3://dermspark/tampered-{tmp_path.name}"
    storage.write_text(url + "/model.keras", "not the model")
    storage.write_text(url + "/manifest.json", json.dumps({"model_sha256": "0" * 64}))
    with pytest.raises(DermsparkError, match="does not match"):
        local_copy(url)
    assert os.listdir(tmp_path / "cache") == []  # nothing half-fetched is left to load


def test_weights_from_a_url_are_fetched_once_and_a_missing_file_fails_on_the_driver(root, tmp_path):
    from dermspark.models.weights import local_weights, resolve_weights

    url = storage.join(root, "weights.h5")
    storage.write_bytes(url, b"weights")
    resolved = resolve_weights(url, "inception_resnet_v2")
    path = local_weights(resolved, "inception_resnet_v2")
    with open(path, "rb") as handle:
        assert handle.read() == b"weights"
    if root.startswith("s3"):
        assert local_weights(resolved, "inception_resnet_v2") == path  # the same cached file
    with pytest.raises(DermsparkError, match="does not exist"):
        resolve_weights(storage.join(root, "missing.h5"), "inception_resnet_v2")


def test_shipped_weights_are_found_in_the_working_folder(tmp_path, monkeypatch):
    from dermspark.models.weights import SHIPPED, local_weights

    (tmp_path / "w.h5").write_bytes(b"w")
    monkeypatch.chdir(tmp_path)
    assert local_weights(SHIPPED + "w.h5", "inception_resnet_v2") == str(tmp_path / "w.h5")
    with pytest.raises(DermsparkError, match="not in"):
        local_weights(SHIPPED + "other.h5", "inception_resnet_v2")
