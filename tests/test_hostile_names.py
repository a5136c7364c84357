"""File names of any bytes and symbolic links, in ingest and in scoring: nothing crashes, every
row's path leads back to its file, and links are followed inside the archive only."""

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
from dermspark.files import printable_path
from dermspark.ingest.pipeline import run_ingest
from dermspark.settings.ingest import IngestSettings
from dermspark.synthetic import make_synthetic_ham10000

LATIN1 = b"l\xe9sion 100%"  # "lésion 100%" in Latin-1: not UTF-8


def _leads_back(path: str) -> bytes:
    """The file-system bytes a row's path names, by the rule in docs/outputs.md."""
    local = path[len("file://") :]
    return os.fsencode(local) if os.path.lexists(local) else unquote_to_bytes(local)


def test_a_path_that_is_not_utf8_is_escaped_and_only_then():
    assert printable_path("file:///a/b 100%.jpg") == "file:///a/b 100%.jpg"
    escaped = printable_path(os.fsdecode(b"/a/" + LATIN1 + b".jpg"))
    assert escaped == "/a/l%E9sion 100%25.jpg" and escaped.encode("utf-8")
    assert unquote_to_bytes(escaped) == b"/a/" + LATIN1 + b".jpg"


@pytest.fixture
def hostile_archive(tmp_path) -> Path:
    """A synthetic HAM10000 archive with: an image whose name is not UTF-8 and has no metadata
    row; a listed image that is a link to a file inside the archive; one that is a link to a
    file outside it."""
    archive = tmp_path / "archive"
    make_synthetic_ham10000(str(archive), images=42, seed=3)
    images = sorted((archive / "HAM10000_images_part_1").glob("*.jpg"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(images[0], outside / "secret.jpg")
    with open(os.path.join(os.fsencode(archive / "HAM10000_images_part_1"), LATIN1 + b".jpg"), "wb") as handle:
        handle.write(images[1].read_bytes())
    (archive / "spare").mkdir()
    shutil.move(images[2], archive / "spare" / images[2].name)
    images[2].symlink_to(archive / "spare" / images[2].name)  # inside: followed
    images[3].unlink()
    images[3].symlink_to(outside / "secret.jpg")  # outside: refused
    return archive


def test_ingest_of_hostile_names_and_links(spark, hostile_archive, tmp_path):
    images = sorted(path for path in (hostile_archive / "HAM10000_images_part_1").iterdir() if path.is_symlink())
    inside, outside = (path.name.rsplit(".", 1)[0] for path in images)
    output = tmp_path / "dataset"
    run_ingest(spark, IngestSettings(input=str(hostile_archive), output=str(output), num_files=2))
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["inputs"] == manifest["written"] + manifest["rejected"]
    rejects = {row["image_id"]: row for row in spark.read.parquet(str(output / "rejects.parquet")).collect()}
    assert rejects[outside]["reason"] == "outside_archive"
    assert rejects[outside]["detail"] == "a symbolic link to a file outside the archive"
    assert inside not in rejects
    latin = next(row for row in rejects.values() if row["reason"] == "no_metadata")
    assert latin["image_id"] == "l%E9sion 100%25"
    assert _leads_back(latin["path"]).endswith(LATIN1 + b".jpg") and os.path.exists(_leads_back(latin["path"]))


def test_scoring_of_hostile_names_and_links(spark, pipeline, hostile_archive, tmp_path):
    from dermspark.score.job import run_score
    from dermspark.settings.score import ScoreSettings

    summary = run_score(
        spark,
        ScoreSettings(
            model=str(pipeline / "model" / "model"),
            input=str(hostile_archive),
            output=str(tmp_path / "out"),
            glob="*.jpg",
        ),
    )
    rows = spark.read.parquet(str(tmp_path / "out" / "predictions")).collect()
    # Every .jpg entry: the link inside the archive (to spare/) is scored, the one out of it is not.
    files = [path for path in hostile_archive.rglob("*") if path.name.endswith(".jpg")]
    assert summary.inputs == len(rows) == len(files)
    assert summary.by_reason == {"outside_archive": 1}
    for row in rows:
        assert os.path.lexists(_leads_back(row["path"])), row["path"]
    latin = next(row for row in rows if "%E9" in row["path"])
    assert latin["error"] is None and latin["predicted_label"] is not None
    refused = next(row for row in rows if row["error"])
    assert os.path.realpath(_leads_back(refused["path"])).endswith(b"secret.jpg")
    # --links follow: a folder of links to a selection kept elsewhere is scored whole.
    followed = run_score(
        spark,
        ScoreSettings(
            model=str(pipeline / "model" / "model"),
            input=str(hostile_archive),
            output=str(tmp_path / "followed"),
            glob="*.jpg",
            links="follow",
        ),
    )
    assert followed.by_reason == {} and followed.scored == len(files)
