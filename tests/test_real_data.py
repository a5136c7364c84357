"""The real HAM10000 archive layout from ../shared/data: an incomplete archive, fully accounted;
and the external ISIC 2017 set through the labels_csv layout."""

import json

from dermspark.ingest.pipeline import run_ingest
from dermspark.settings.ingest import IngestSettings


def test_real_partial_archive_is_fully_accounted(spark, real_data, tmp_path):
    output = tmp_path / "real"
    run_ingest(spark, IngestSettings(input=str(real_data / "ham10000-600x450"), output=str(output)))
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["inputs"] == 10_015
    assert manifest["written"] == 250
    assert manifest["rejected"] == 9_765
    assert manifest["by_reason"] == {"missing_file": 9_765}
    assert manifest["per_class"] == {"akiec": 7, "bcc": 18, "bkl": 20, "df": 9, "mel": 24, "nv": 164, "vasc": 8}


def test_whole_200x150_set_splits_by_lesion(spark, real_data, tmp_path):
    import pandas as pd

    output = tmp_path / "whole"
    run_ingest(spark, IngestSettings(input=str(real_data / "ham10000-200x150"), output=str(output), folds=5))
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["written"] == 10_015
    metadata = pd.read_csv(real_data / "ham10000-200x150" / "HAM10000_metadata.csv")
    assert manifest["per_class"] == metadata["dx"].value_counts().to_dict()
    rows = spark.read.parquet(str(output / "images_75x100")).select("lesion_id", "split")
    assert rows.distinct().groupBy("lesion_id").count().filter("count > 1").count() == 0
    assert rows.select("lesion_id").distinct().count() == 7_470
    # Grouping keeps the 80/10/10 ratio within a point per split.
    for split, ratio in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        assert abs(sum(manifest["per_split"][split].values()) / 10_015 - ratio) < 0.01
    # Five folds: no lesion in two, and each class's images shared out evenly, within 10% of
    # the even share or 2 images, whichever is larger (lesions move whole).
    folds = spark.read.parquet(str(output / "images_75x100")).select("lesion_id", "fold")
    assert folds.distinct().groupBy("lesion_id").count().filter("count > 1").count() == 0
    assert manifest["folds"] == 5 and sorted(manifest["per_fold"]) == ["0", "1", "2", "3", "4"]
    for name, total in manifest["per_class"].items():
        even = total / 5
        for fold, counts in manifest["per_fold"].items():
            assert abs(counts.get(name, 0) - even) <= max(0.1 * even, 2), (name, fold, counts.get(name, 0), even)


def test_the_external_isic2017_set_is_ingested_whole_and_split_by_image(spark, real_data, tmp_path):
    output = tmp_path / "isic2017"
    run_ingest(
        spark,
        IngestSettings(
            input=str(real_data / "external-isic2017"), output=str(output), source="labels_csv", sizes="144x144"
        ),
    )
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["written"] == 2_745
    assert manifest["per_class"] == {"bkl": 386, "mel": 521, "nv": 1_838}
    # Its lesion ids repeat the image ids but for three (MSK4_...): the rest are split by image.
    assert manifest["grouped_by"] == {"lesion": 3, "image": 2_742}
    assert manifest["classes"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def test_killed_job_leaves_nothing_at_the_output(real_data, tmp_path):
    """spark-submit killed while it writes: no output folder, only a hidden staging one."""
    import subprocess

    from conftest import ROOT, kill_when

    output = tmp_path / "killed"
    job = subprocess.Popen(
        [
            str(ROOT / "spark-submit.sh"),
            "ingest",
            "--input",
            str(real_data / "ham10000-200x150"),
            "--output",
            str(output),
            "--sizes",
            "75x100,299x299",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    kill_when(job, lambda: list(tmp_path.glob(".killed.tmp-*/images_*")), "started writing")
    assert not output.exists()
