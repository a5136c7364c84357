"""The ISIC 2019 and class-folder sources, built here in their exact layouts, into every label space."""

import json
from pathlib import Path

import numpy as np
import pytest
from dermspark import DermsparkError
from dermspark.ingest.pipeline import run_ingest
from dermspark.settings.ingest import IngestSettings
from PIL import Image
from pyspark.sql import functions as F

DIAGNOSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
# (diagnosis, images) per lesion; None: no lesion_id, as many ISIC 2019 rows have.
PLAN = [
    ("NV", 3),
    ("NV", 2),
    ("MEL", 2),
    ("MEL", 1),
    ("BCC", 2),
    ("AK", 1),
    ("SCC", 1),
    ("BKL", 2),
    ("DF", 1),
    ("VASC", 1),
    (None, 0),
]


@pytest.fixture(scope="module")
def isic_archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("isic") / "ISIC_2019_Training"
    images = root / "ISIC_2019_Training_Input"
    images.mkdir(parents=True)
    truth, extra, number = [], [], 0
    rng = np.random.default_rng(0)

    def add(dx: str, lesion: str, one: str, suffix: str = "") -> None:
        nonlocal number
        name = f"ISIC_{number:07d}{suffix}"
        number += 1
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{name}.jpg")
        truth.append([name] + [one if column == dx else "0.0" for column in DIAGNOSES])
        extra.append([name, "45.0", "anterior torso", lesion, "female"])

    for lesion_number, (dx, count) in enumerate(PLAN):
        for index in range(count):
            add(dx, f"BCN_{lesion_number:07d}", "1.0" if index % 2 else "1", "_downsampled" * (index == 1))
    for dx in ("NV", "MEL", "BKL"):
        add(dx, "", "1.0")  # no lesion_id: its own group
    add("UNK", "BCN_0009999", "1")  # unknown diagnosis
    truth.append(["ISIC_9999999"] + ["0.0"] * 9)  # no diagnosis at all: bad_row
    (images / "ISIC_9999999.jpg").write_bytes((images / "ISIC_0000000.jpg").read_bytes())
    truth.append(["ISIC_9999998"] + ["1.0", "1"] + ["0.0"] * 7)  # two-hot: bad_row, and says so
    (images / "ISIC_9999998.jpg").write_bytes((images / "ISIC_0000000.jpg").read_bytes())

    def write(name, header, rows):
        lines = [",".join(header)] + [",".join(row) for row in rows]
        (root / name).write_bytes(("\r\n".join(lines) + "\r\n").encode())  # CRLF, as published

    write("ISIC_2019_Training_GroundTruth.csv", ["image", *DIAGNOSES], truth)
    write("ISIC_2019_Training_Metadata.csv", ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"], extra)
    return root


@pytest.mark.parametrize(
    ("label_space", "per_class"),
    [
        ("isic2019", {"ak": 1, "bcc": 2, "bkl": 3, "df": 1, "mel": 4, "nv": 6, "scc": 1, "vasc": 1}),
        ("ham10000", {"akiec": 2, "bcc": 2, "bkl": 3, "df": 1, "mel": 4, "nv": 6, "vasc": 1}),
        ("melanoma", {"melanoma": 4, "non_melanoma": 15}),
    ],
)
def test_isic2019_into_each_label_space(spark, isic_archive, tmp_path, label_space, per_class):
    output = tmp_path / label_space
    # recipe:benbrahim_cnn is that paper's 80/10/10.
    run_ingest(
        spark,
        IngestSettings(
            source="isic2019",
            input=str(isic_archive),
            output=str(output),
            label_space=label_space,
            num_files=2,
            split="recipe:benbrahim_cnn",
        ),
    )
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["per_class"] == per_class
    # The all-zero and two-hot rows are bad rows; each file is its row's, one input with it.
    assert manifest["by_reason"] == {"bad_row": 2, "unknown_label": 1}
    assert manifest["inputs"] == 22 == manifest["written"] + manifest["rejected"]
    rejects = spark.read.parquet(str(output / "rejects.parquet")).filter("reason = 'bad_row'").collect()
    assert sorted((row["image_id"], row["path"].rsplit("/", 1)[1], row["detail"]) for row in rejects) == [
        ("ISIC_9999998", "ISIC_9999998.jpg", f"several diagnosis columns are 1: {DIAGNOSES[0]}, {DIAGNOSES[1]}"),
        ("ISIC_9999999", "ISIC_9999999.jpg", "no diagnosis column is 1"),
    ]
    assert manifest["classes"] == list(per_class)
    assert manifest["split_ratios"] == {"train": 0.8, "validation": 0.1, "test": 0.1}

    rows = spark.read.parquet(str(output / "images_75x100")).select("image_id", "lesion_id", "split")
    grouped = rows.filter("lesion_id is not null").groupBy("lesion_id").agg({"split": "count"})
    assert rows.filter("lesion_id is not null").select("lesion_id", "split").distinct().count() == grouped.count()
    assert rows.filter(F.col("image_id").endswith("_downsampled")).count() == 5


def test_class_folders_as_split_folders_wrote_them(spark, tmp_path):
    """split-folders' train/val/test/<class>/ output; its per-image split is discarded."""
    root = tmp_path / "melanoma_dataset"
    rng = np.random.default_rng(1)
    counts = {
        ("train", "Melanoma"): 6,
        ("train", "non-melanoma"): 8,
        ("val", "Melanoma"): 2,
        ("test", "non-melanoma"): 3,
        ("test", "moles"): 1,
    }
    for (split, label), count in counts.items():
        (root / split / label).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / label / f"{split}_{label}_{index}.png")
    (root / "README.txt").write_text("not in a class folder")
    output = tmp_path / "out"
    run_ingest(
        spark,
        IngestSettings(source="folders", input=str(root), output=str(output), label_space="melanoma", num_files=2),
    )
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["per_class"] == {"melanoma": 8, "non_melanoma": 11}
    assert manifest["by_reason"] == {"unknown_label": 2}  # the 'moles' folder and the README
    assert manifest["inputs"] == 21
    details = {row["detail"] for row in spark.read.parquet(str(output / "rejects.parquet")).collect()}
    assert "label 'moles' is in none of the label space's classes" in details


def test_a_recipe_split_is_its_papers():
    from dermspark.ingest.split import parse_ratios, recipe_ratios

    assert parse_ratios(recipe_ratios("recipe:huber_cnn")) == pytest.approx((0.7, 0.1, 0.2))
    assert recipe_ratios("80/20") == "80/20"
    with pytest.raises(DermsparkError, match="unknown model 'nope'"):
        recipe_ratios("recipe:nope")


@pytest.mark.parametrize("seed", [42, 7, -3, 2**40])
def test_the_split_hash_is_sparks_xxhash64(spark, seed):
    """The split is planned on the driver with Spark's own hash, so an archive splits as it did
    when Spark planned it (and as the results in docs/results.md were made)."""
    from dermspark.ingest.split import spark_xxhash64

    texts = ["HAM_0000118", "ISIC_0024306", "", "a", "lésion-ü-字", "x" * 31, "y" * 32, "z" * 33, "HAM_" + "9" * 70]
    rows = (
        spark.createDataFrame([(text,) for text in texts], "text string")
        .select("text", F.xxhash64(F.lit(seed), "text").alias("hash"))
        .collect()
    )
    assert {row["text"]: row["hash"] for row in rows} == {text: spark_xxhash64(seed, text) for text in texts}


def test_metadata_lines_with_the_wrong_field_count_are_marked_not_dropped(tmp_path):
    from dermspark import DermsparkError
    from dermspark.metadata import read_table

    path = tmp_path / "metadata.csv"
    path.write_text(
        "\ufeff lesion_id ,image_id,dx,age\n"
        "L1,I1,nv,50\n"
        "\n"
        "L2,I2,mel\n"  # too few fields
        'L3,"I3",bkl,40,extra\n'  # too many
        "L4, I4 ,,\n"  # empty fields: None, stripped
        '"L5","I,5","df","x"\n'
    )  # a quoted comma
    table = read_table("file://" + str(path), ("lesion_id", "image_id", "dx"))
    assert list(table.columns) == ["lesion_id", "image_id", "dx", "age", "_malformed", "_row"]
    assert table["image_id"].tolist() == ["I1", "I2", "I3", "I4", "I,5"]
    assert table["_malformed"].tolist() == [False, True, True, False, False]
    assert table["_row"].tolist() == [0, 1, 2, 3, 4]
    assert table.loc[3, "dx"] is None and table.loc[1, "age"] is None and table.loc[2, "age"] == "40"
    with pytest.raises(DermsparkError, match="lacks the column"):
        read_table("file://" + str(path), ("image_id", "diagnosis"))
    with pytest.raises(DermsparkError, match="cannot read metadata file"):
        read_table("file://" + str(tmp_path / "none.csv"), ("image_id",))


@pytest.mark.parametrize("tied", [False, True], ids=["hashed", "every-hash-tied"])
def test_splits_and_folds_do_not_depend_on_the_rows_order(monkeypatch, tied):
    """Lesions are ordered by the seeded hash and then by id, so shuffling the archive's rows
    moves no image to another split or fold, even where hashes tie (forced here: a 64-bit
    collision), and every lesion stays whole."""
    import pandas as pd
    from dermspark.ingest import split

    if tied:
        monkeypatch.setattr(split, "spark_xxhash64s", lambda seed, texts: np.zeros(len(texts), dtype=np.int64))
    rng = np.random.default_rng(3)
    count = 600
    frame = pd.DataFrame(
        {
            "image_id": [f"I{i:04d}" for i in range(count)],
            "lesion_id": rng.choice(np.array([None, "", " ", *[f"L{i}" for i in range(250)]], dtype=object), count),
            "class_name": rng.choice(["df", "mel", "nv"], count, p=[0.1, 0.2, 0.7]),
        }
    )
    shuffled = frame.sample(frac=1, random_state=1).reset_index(drop=True)

    def planned(rows):
        splits, folds = split.lesion_splits(rows, (0.8, 0.1, 0.1), 42), split.lesion_folds(rows, 5, 42)
        return pd.DataFrame(
            {"split": splits, "fold": folds, "lesion": split.lesion_groups(rows).to_numpy()}, index=rows["image_id"]
        ).sort_index()

    first = planned(frame)
    pd.testing.assert_frame_equal(first, planned(shuffled))
    assert set(first["split"]) == {"train", "validation", "test"} and set(first["fold"]) == set(range(5))
    assert first.groupby("lesion")[["split", "fold"]].nunique().max().tolist() == [1, 1]
