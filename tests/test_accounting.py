"""Matching metadata rows with files on the driver: each reject says what was wrong."""

import pandas as pd
from dermspark.ingest.accounting import match
from dermspark.ingest.sources import METADATA_COLUMNS, Archive
from dermspark.labels import label_mapping


def _archive(rows: list[dict], files: list[str], why: list | None = None) -> Archive:
    metadata = pd.DataFrame(
        [
            {**{name: None for name in METADATA_COLUMNS}, "_malformed": False, **row, "_row": index}
            for index, row in enumerate(rows)
        ]
    )
    if why is not None:
        metadata["_why"] = why
    return Archive(
        metadata=metadata,
        files=pd.DataFrame({"image_id": files, "path": [f"/a/{f}.jpg" for f in files]}),
        image_folders=["/a"],
        vocabulary="ham10000",
    )


def _rejects(archive: Archive) -> tuple[pd.DataFrame, dict, int]:
    """Candidates, {(image id, reason): [details]}, inputs."""
    candidates, rejects, inputs = match(archive, label_mapping(archive.vocabulary, "ham10000"))
    found: dict = {}
    for row in rejects.itertuples():
        found.setdefault((row.image_id, row.reason), []).append(row.detail)
    return candidates, found, inputs


def test_rows_of_one_image_that_disagree_on_the_diagnosis_are_a_conflicting_duplicate():
    archive = _archive(
        [
            {"image_id": "a", "dx": "mel"},
            {"image_id": "a", "dx": "nv"},
            {"image_id": "b", "dx": "nv"},
            {"image_id": "b", "dx": "nv"},
            {"image_id": "c", "dx": "df"},
        ],
        ["a", "b", "c"],
    )
    candidates, rejects, inputs = _rejects(archive)
    assert sorted(candidates["image_id"]) == ["b", "c"]
    # Both of a's rows (the first with its file), each naming both diagnoses.
    assert rejects[("a", "conflicting_duplicate")] == ["rows of this image id name 'mel' and 'nv'"] * 2
    assert rejects[("b", "duplicate_id")] == [""]
    # Every input once: 5 rows + 3 files, less the 3 pairs; 2 written, 3 rejected (a twice, b once).
    assert inputs == 5 and len(candidates) + 3 == inputs


def test_an_unknown_label_is_named_and_a_two_hot_row_says_so():
    archive = _archive(
        [{"image_id": "a", "dx": "scc"}, {"image_id": "b", "dx": None}, {"image_id": "c", "dx": None}],
        ["a", "b", "c"],
        why=[None, "several diagnosis columns are 1: MEL, NV", "no diagnosis column is 1"],
    )
    _, rejects, _ = _rejects(archive)
    assert rejects[("a", "unknown_label")] == ["label 'scc' is in none of the label space's classes"]
    assert rejects[("b", "bad_row")] == ["several diagnosis columns are 1: MEL, NV"]
    assert rejects[("c", "bad_row")] == ["no diagnosis column is 1"]
