"""The ingest job in-process on the shared Spark session: accounting, splits, reruns, stores."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dermspark import DermsparkError
from dermspark.ingest import pipeline
from dermspark.ingest.pipeline import run_ingest
from dermspark.settings.ingest import IngestSettings
from messy import GOOD_ODDITIES, make_messy_archive


@pytest.fixture(scope="module")
def messy_archive(synthetic_archive, tmp_path_factory) -> Path:
    return make_messy_archive(synthetic_archive.path, tmp_path_factory.mktemp("messy") / "archive")


@pytest.fixture(scope="module")
def ingested(spark, messy_archive, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("ingest") / "dataset"
    run_ingest(spark, IngestSettings(input=str(messy_archive), output=str(output), num_files=4, sizes="75x100,299x299"))
    return output


def test_every_input_is_accounted_for(ingested, synthetic_archive):
    manifest = json.loads((ingested / "manifest.json").read_text())
    assert manifest["by_reason"] == {
        "bad_row": 3,
        "duplicate_id": 1,
        "missing_file": 1,
        "no_metadata": 1,
        "not_an_image": 1,
        "too_large": 1,
        "truncated": 1,
        "unknown_label": 1,
        "unreadable": 1,
    }
    # Written: the synthetic images, the PNG named .jpg, the non-ASCII name and the six odd
    # encodings (CMYK, grey, palette, RGBA, 16-bit, EXIF-rotated); nothing else.
    assert manifest["written"] == synthetic_archive.images + 2 + len(GOOD_ODDITIES)
    # 18 new metadata rows, 14 new files of which 13 pair with a row: 19 new inputs.
    assert manifest["inputs"] == synthetic_archive.images + 19
    assert manifest["inputs"] == manifest["written"] + manifest["rejected"]
    assert sum(manifest["per_class"].values()) == manifest["written"]


def test_rejects_table_names_each_input_and_its_reason(spark, ingested):
    rejects = spark.read.parquet(str(ingested / "rejects.parquet")).collect()
    by_id = {(row["image_id"], row["reason"]) for row in rejects}
    assert ("ISIC_9000002", "truncated") in by_id
    assert ("ISIC_9000003", "unreadable") in by_id
    assert ("ISIC_9000005", "no_metadata") in by_id
    assert ("ISIC_9000007", "missing_file") in by_id
    assert ("ISIC_9000010", "too_large") in by_id
    assert ("ISIC_9000011", "bad_row") in by_id and ("ISIC_9000012", "bad_row") in by_id
    assert len(rejects) == 11


def test_no_lesion_in_two_splits(spark, ingested):
    rows = spark.read.parquet(str(ingested / "images_75x100")).select("lesion_id", "split")
    per_lesion = rows.groupBy("lesion_id").agg({"split": "count"}).count()
    assert rows.distinct().count() == per_lesion
    assert {row["split"] for row in rows.select("split").distinct().collect()} == {"train", "validation", "test"}


def test_petastorm_reads_every_image_at_the_requested_size(ingested, capfd):
    from dermspark import petastorm_compat
    from petastorm import make_reader

    petastorm_compat.apply()
    manifest = json.loads((ingested / "manifest.json").read_text())
    capfd.readouterr()
    with make_reader(f"file://{ingested}/images_75x100", num_epochs=1) as reader:
        rows = list(reader)
    # Petastorm's own reader prints "Cache cleanup complete." on exit; dermspark's prints nothing.
    assert capfd.readouterr().out == ""
    assert len(rows) == manifest["written"]
    assert all(row.image.shape == (75, 100, 3) and row.image.dtype == np.uint8 for row in rows)
    assert {int(row.label) for row in rows} == set(range(7))


def test_every_size_holds_the_same_rows(spark, ingested):
    from dermspark import petastorm_compat
    from petastorm import make_reader

    petastorm_compat.apply()

    def rows(name):
        frame = spark.read.parquet(str(ingested / name)).select("image_id", "split", "label")
        return sorted(tuple(row) for row in frame.collect())

    assert rows("images_75x100") == rows("images_299x299")
    with make_reader(f"file://{ingested}/images_299x299", num_epochs=1) as reader:
        assert next(iter(reader)).image.shape == (299, 299, 3)
    manifest = json.loads((ingested / "manifest.json").read_text())
    assert manifest["datasets"] == {"75x100": "images_75x100", "299x299": "images_299x299"}


def test_missing_ages_get_the_training_mean(spark, ingested, messy_archive):
    import pandas as pd

    rows = (
        spark.read.parquet(str(ingested / "images_75x100"))
        .select("image_id", "split", "age", "age_imputed", "sex", "localization")
        .toPandas()
    )
    metadata = pd.read_csv(messy_archive / "HAM10000_metadata.csv", on_bad_lines="skip")
    metadata = metadata.drop_duplicates("image_id")
    missing = set(metadata.loc[metadata["age"].isna(), "image_id"]) & set(rows["image_id"])
    assert "ISIC_9000001" in missing
    assert set(rows.loc[rows["age_imputed"], "image_id"]) == missing
    # The training split as split, before decoding: its written images and those decoding rejected.
    rejected = spark.read.parquet(str(ingested / "rejects.parquet")).toPandas()
    training = set(rows.loc[rows["split"] == "train", "image_id"]) | set(
        rejected.loc[rejected["split"] == "train", "image_id"]
    )
    assert set(rejected.loc[rejected["split"].notna(), "origin"]) == {"file"}
    train_mean = metadata[metadata["image_id"].isin(training)]["age"].mean()
    assert rows.loc[rows["age_imputed"], "age"].tolist() == pytest.approx([train_mean] * len(missing))
    manifest = json.loads((ingested / "manifest.json").read_text())
    assert manifest["age"] == {"train_mean": pytest.approx(train_mean), "imputed": len(missing)}
    assert rows["sex"].notna().all() and rows["localization"].notna().all()


def test_report_counts_match_the_manifest(ingested):
    tables = json.loads((ingested / "report" / "distributions.json").read_text())
    manifest = json.loads((ingested / "manifest.json").read_text())
    assert tables["class_name"]["all"] == manifest["per_class"]
    for split, counts in manifest["per_split"].items():
        assert tables["class_name"][split] == counts
    for column in ("dx_type", "localization", "sex", "age_bin"):
        assert sum(tables[column]["all"].values()) == manifest["written"]
        png = (ingested / "report" / f"{column}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_training_names_the_missing_size():
    from dermspark.manifests import DatasetManifest
    from dermspark.train.dataset import pick_size

    with pytest.raises(DermsparkError, match="needs 299x299.*--sizes 299x299"):
        pick_size(DatasetManifest(datasets={"75x100": "images_75x100"}), (299, 299), "some_model")


def test_finite_reads_are_never_cut_short(ingested):
    """Petastorm 0.13.1's thread pool can end a finite read early (5% of reads when measured);
    dermspark.petastorm_compat fixes the order of its end-of-data checks."""
    from dermspark import petastorm_compat
    from petastorm import make_reader

    petastorm_compat.apply()
    written = json.loads((ingested / "manifest.json").read_text())["written"]
    url = f"file://{ingested}/images_75x100"
    counts = []
    for _ in range(100):
        with make_reader(url, num_epochs=1, workers_count=4, schema_fields=["label"]) as reader:
            counts.append(sum(1 for _ in reader))
    assert counts == [written] * 100


def test_rerun_gives_the_same_rows_and_split_and_raw_arrays_the_same_pixels(spark, messy_archive, ingested, tmp_path):
    """A rerun storing raw uint8 arrays instead of PNG: the same rows and split, and Petastorm's
    reader, taking the codec from the dataset's schema, gives the same pixels."""
    from dermspark import petastorm_compat
    from petastorm import make_reader

    again = tmp_path / "again"
    run_ingest(spark, IngestSettings(input=str(messy_archive), output=str(again), num_files=4, codec="raw"))

    def rows(path):
        frame = spark.read.parquet(str(path / "images_75x100")).select("image_id", "split", "label")
        return sorted(tuple(row) for row in frame.collect())

    assert rows(again) == rows(ingested)
    petastorm_compat.apply()

    def pixels(path):
        with make_reader(f"file://{path}/images_75x100", num_epochs=1, schema_fields=["image_id", "image"]) as reader:
            return {row.image_id: row.image for row in reader}

    png, raw = pixels(ingested), pixels(again)
    assert png.keys() == raw.keys() and all(np.array_equal(png[key], raw[key]) for key in png)
    # Stored without PNG's compression: the same pixels in more bytes.
    assert _bytes(again) > 1.3 * _bytes(ingested)
    assert json.loads((again / "manifest.json").read_text())["codec"] == "raw"


def _bytes(dataset: Path) -> int:
    return sum(path.stat().st_size for path in (dataset / "images_75x100").glob("part-*.parquet"))


def test_an_archive_on_another_store_is_read_by_its_decode_tasks_and_no_bytes_cross_spark(
    spark, messy_archive, ingested, s3_store, monkeypatch, tmp_path
):
    """The messy archive's files on S3, read by the decode tasks through the storage layer, as
    from any store but a local disk: the same images and rejects as the local archive gave. The
    tasks get their planned rows (paths, no image bytes), one frame per output file. (Spark here
    has no S3A connector, so the listing is Spark's own of the local copy, as for a remote store,
    and the planned paths are then moved to S3.)"""
    from conftest import s3_filesystem
    from dermspark import files

    prefix = f"dermspark/archive-{tmp_path.name}"
    s3_filesystem(s3_store).put(str(messy_archive), prefix, recursive=True)
    local = "file:///" + str(messy_archive).lstrip("/")
    plan_files, seen = pipeline.plan_files, {}

    def on_s3(candidates, num_files):
        moved = candidates.assign(path=candidates["path"].str.replace(local, f"s3://{prefix}", regex=False))
        seen["files"] = plan_files(moved, num_files)
        return seen["files"]

    monkeypatch.setattr(pipeline, "plan_files", on_s3)
    monkeypatch.setattr(files, "is_local", lambda urls: False)
    through_s3 = tmp_path / "through-s3"
    run_ingest(
        spark, IngestSettings(input=str(messy_archive), output=str(through_s3), num_files=4, sizes="75x100,299x299")
    )
    planned = pd.concat(seen["files"])
    assert len(seen["files"]) == 4 and planned["path"].str.startswith("s3://").all()
    assert planned["image_id"].is_unique and not {"content", "image"} & set(planned.columns)

    def images(path):
        frame = spark.read.parquet(str(path / "images_75x100")).select("image_id", "split", "image")
        return sorted(tuple(row) for row in frame.collect())

    def rejects(path):
        frame = spark.read.parquet(str(path / "rejects.parquet")).select("origin", "image_id", "reason")
        return sorted(tuple(row) for row in frame.collect())

    assert images(through_s3) == images(ingested)
    assert rejects(through_s3) == rejects(ingested)


def test_existing_output_needs_overwrite(spark, messy_archive, ingested):
    with pytest.raises(DermsparkError, match="already exists"):
        run_ingest(spark, IngestSettings(input=str(messy_archive), output=str(ingested)))


def test_an_output_on_s3_needs_no_spark_connector(spark, synthetic_archive, s3_store, monkeypatch, tmp_path):
    """Spark here has no S3A connector: every file ingest writes goes through the storage layer,
    and the dataset on S3 holds what the manifest says, as Petastorm reads it back."""
    import pyarrow.parquet as pq
    from conftest import s3_filesystem
    from dermspark import petastorm_compat
    from dermspark.schema import dataset_dirname
    from petastorm import make_reader

    for name, value in s3_store.items():
        monkeypatch.setenv(name, value)
    output = f"s3://dermspark/ingest-{tmp_path.name}"
    result = run_ingest(spark, IngestSettings(input=synthetic_archive.path, output=output))
    s3 = s3_filesystem(s3_store)
    prefix = output[len("s3://") :]
    manifest = json.loads(s3.cat(f"{prefix}/manifest.json"))
    assert manifest["written"] == result.manifest.written and manifest["inputs"] == result.manifest.inputs
    with s3.open(f"{prefix}/rejects.parquet", "rb") as handle:
        assert pq.read_table(handle).num_rows == manifest["rejected"]
    assert s3.exists(f"{prefix}/report/distributions.json")
    dataset = f"{output}/{dataset_dirname(75, 100)}"
    # Petastorm needs pyarrow's legacy file system on S3 (petastorm_compat), as training uses.
    with make_reader(
        dataset, schema_fields=["image_id"], num_epochs=1, filesystem=petastorm_compat.filesystem(dataset)
    ) as reader:
        assert sum(1 for _ in reader) == manifest["written"]
    assert not [path for path in s3.ls("dermspark") if ".tmp-" in path]
