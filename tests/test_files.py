"""Local listings are read from the file system directly; they must equal Spark's file index."""

from urllib.parse import unquote

import pytest
from dermspark.files import _binary_files, canonical_path, list_files


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    files = {
        "a.jpg": b"x",
        "b.PNG": b"x",
        "c.png": b"x",
        "empty.jpg": b"",
        "nested/deeper/d.jpg": b"x",
        "nested/e.txt": b"x",
        "space name %20.jpg": b"x",
        "ñandú.jpg": b"x",
        ".hidden.jpg": b"x",
        "_underscore.jpg": b"x",
        ".cache/f.jpg": b"x",
        "_tmp/g.jpg": b"x",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


@pytest.mark.parametrize("glob", [None, "*.jpg", "*.{jpg,png}", "?.jpg"])
def test_local_listing_equals_sparks_file_index(spark, tree, glob):
    url = "file://" + str(tree)
    ours = sorted(row["path"] for row in list_files(spark, [url], glob).collect())
    sparks = sorted(canonical_path(unquote(path)) for path in _binary_files(spark, [url], glob).inputFiles())
    assert ours == sparks
    assert ours  # every pattern above matches something
