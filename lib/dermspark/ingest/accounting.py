"""Every metadata row and every file ends in exactly one place: the dataset or the rejects.

`match` pairs metadata rows with files and rejects what cannot be paired; `manifest` counts the
outcome and checks that inputs = written + rejected, counted independently of the rejects. The
tables are the archive's small ones (a row per input, no image bytes), matched on the driver.
"""

from collections import Counter

import numpy as np
import pandas as pd

from dermspark.ingest.sources import Archive

# A file claimed by a bad metadata row: rejected with that row, not on its own.
CLAIMED = "_claimed"
# Kept with every written image; never logged (patient metadata).
METADATA_COLUMNS = ("age", "sex", "localization", "dx_type")
REJECT_COLUMNS = ("origin", "image_id", "path", "reason", "detail", "split")
# frame: a DICOM file's frame (None for other files)
CANDIDATE_COLUMNS = ("image_id", "lesion_id", "dx", "class_name", "path", "frame", *METADATA_COLUMNS)


def _reject(frame: pd.DataFrame, origin, reason, detail="") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "origin": origin,
            "image_id": frame["image_id"],
            "path": frame["path"] if "path" in frame.columns else None,
            "reason": reason,
            "detail": detail,
            "split": None,
        },
        index=frame.index,
        columns=list(REJECT_COLUMNS),
    )


def _nth(frame: pd.DataFrame, order: str) -> pd.Series:
    """0 for the first row of each image id by `order`, 1 for the second, ..."""
    if not frame["image_id"].duplicated().any():  # the usual archive: no sort nor grouping
        return pd.Series(0, index=frame.index)
    return frame.sort_values(order, kind="stable").groupby("image_id", dropna=False, sort=False).cumcount()


def _where(frame: pd.DataFrame, keep: pd.Series) -> pd.DataFrame:
    """The rows to keep, without copying every column when they are all of them (the usual
    archive): each copy of a text column touches every string, 10 to 15 ms at 40,000 rows."""
    return frame if keep.all() else frame[keep]


def _outer_join(rows: pd.DataFrame, files: pd.DataFrame) -> pd.DataFrame:
    """Every row with its file's `path` (None where it has none), then the files no row names,
    each with the rest of its columns missing. Both sides hold each image id once. A lookup in
    one hash table of the files' ids instead of pandas' outer merge, which sorts the union of the
    keys and takes every column through it: 0.09 against 0.02 s at 40,000 images."""
    file_ids = pd.Index(files["image_id"])
    at = file_ids.get_indexer(rows["image_id"])
    hit = at >= 0
    found = at[hit]
    path = np.full(len(rows), None, dtype=object)
    path[hit] = files["path"].to_numpy()[found]
    frame = np.full(len(rows), None, dtype=object)
    if "frame" in files.columns:
        frame[hit] = files["frame"].to_numpy()[found]
    matched = rows.assign(path=path, frame=frame)
    named = np.zeros(len(files), dtype=bool)
    named[found] = True
    if named.all():
        return matched.reset_index(drop=True)
    return pd.concat([matched, files[~named]], ignore_index=True)


def match(archive: Archive, mapping: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Returns (candidates to decode, rejects so far, inputs). `mapping` takes the archive's
    diagnoses to the label space's classes (labels.label_mapping); candidates carry the result
    as `class_name`. Inputs are metadata rows plus files, a row and its file counting once (a
    bad row's too), counted apart from the rejects so that the manifest's check means something."""
    metadata, files = archive.metadata, archive.files
    bad = metadata["_malformed"] | metadata["image_id"].isna() | metadata["dx"].isna()
    rows = _where(metadata, ~bad)
    row_nth, file_nth = _nth(rows, "_row"), _nth(files, "path")
    kept_rows, kept_files = _where(rows, row_nth == 0), _where(files, file_nth == 0)
    # A file whose only rows are bad belongs to the first bad row's reject: one input, not a
    # bad row plus a file without metadata.
    claimed = set(metadata.loc[bad & metadata["image_id"].notna(), "image_id"])
    joined = _outer_join(kept_rows, kept_files)
    joined["class_name"] = joined["dx"].map(mapping)
    no_row = joined["_row"].isna()
    is_claimed = no_row & joined["image_id"].isin(claimed)
    reason = pd.Series(None, index=joined.index, dtype=object)
    reason[joined["class_name"].isna()] = "unknown_label"
    # An image id whose rows disagree on the diagnosis: which is right cannot be known.
    conflicts = _conflicts(rows)
    reason[joined["image_id"].isin(conflicts.index) & ~no_row] = "conflicting_duplicate"
    reason[no_row] = "no_metadata"
    reason[is_claimed] = CLAIMED
    reason[joined["path"].isna()] = "missing_file"
    joined["_reason"] = reason

    files_of_bad_rows = joined.loc[joined["_reason"] == CLAIMED, ["image_id", "path"]]
    bad_rows = metadata[bad].assign(_nth=lambda frame: _nth(frame, "_row"))
    bad_rows = bad_rows.merge(files_of_bad_rows[files_of_bad_rows["image_id"].notna()], on="image_id", how="left")
    bad_rows.loc[bad_rows["_nth"] != 0, "path"] = None
    # By image id, as a sorted outer merge left them: the rejects file keeps its order.
    unmatched = joined[joined["_reason"].notna() & (joined["_reason"] != CLAIMED)].sort_values(
        "image_id", kind="stable"
    )
    later = rows[row_nth > 0]
    conflicting = later["image_id"].map(conflicts)
    rejects = pd.concat(
        [
            _reject(bad_rows, "metadata", "bad_row", _bad_row_details(bad_rows)),
            _reject(later[conflicting.isna()], "metadata", "duplicate_id"),
            _reject(later[conflicting.notna()], "metadata", "conflicting_duplicate", conflicting[conflicting.notna()]),
            _reject(files[file_nth > 0], "file", "duplicate_id"),
            _reject(
                unmatched,
                unmatched["_reason"].map(lambda why: "file" if why == "no_metadata" else "metadata"),
                unmatched["_reason"],
                _label_details(unmatched, conflicts),
            ),
        ],
        ignore_index=True,
    )
    candidates = joined.loc[joined["_reason"].isna(), list(CANDIDATE_COLUMNS)].reset_index(drop=True)
    pairs = int(((joined["path"].notna() & ~no_row) | is_claimed).sum())
    return candidates, rejects, len(metadata) + len(archive.files) - pairs


def _conflicts(rows: pd.DataFrame) -> pd.Series:
    """{image id: detail} for ids whose good rows name more than one diagnosis."""
    if not rows["image_id"].duplicated().any():
        return pd.Series([], dtype=object)
    named = rows.groupby("image_id", sort=True)["dx"].agg(lambda values: sorted(set(values)))
    named = named[named.map(len) > 1]
    return named.map(lambda values: "rows of this image id name " + " and ".join(map(repr, values)))


def _bad_row_details(bad_rows: pd.DataFrame) -> pd.Series:
    detail = bad_rows["_malformed"].map({True: "wrong number of fields", False: "image id or diagnosis missing"})
    if "_why" in bad_rows.columns:
        detail = bad_rows["_why"].where(bad_rows["_why"].notna() & ~bad_rows["_malformed"], detail)
    return detail


def _label_details(unmatched: pd.DataFrame, conflicts: pd.Series) -> pd.Series:
    """The label an unknown_label reject had, named, so a typo in a CSV can be found; the
    diagnoses a conflicting_duplicate's rows disagree on."""
    unknown = unmatched["_reason"] == "unknown_label"
    named = "label " + unmatched["dx"].astype(str).map(repr) + " is in none of the label space's classes"
    conflicting = unmatched["image_id"].map(conflicts)
    return named.where(unknown, conflicting.where(unmatched["_reason"] == "conflicting_duplicate", ""))


def write_rejects(rejects: pd.DataFrame, url: str) -> dict[str, int]:
    """One Parquet file of every rejected input, written through the storage layer (a row per
    reject, small next to the images): returns the count of each reason, from what was written."""
    import pyarrow as pa

    from dermspark import storage

    table = pa.table(
        {
            name: pa.array([None if pd.isna(value) else str(value) for value in rejects[name]], pa.string())
            for name in REJECT_COLUMNS
        }
    )
    storage.write_parquet(table, url)
    return dict(Counter(table.column("reason").to_pylist()))


def manifest(inputs: int, written: pd.DataFrame, by_reason: dict[str, int], folds: int = 0) -> dict:
    """The manifest's counts from the written rows."""
    per_split_class = written.groupby(["split", "class_name"]).size()
    per_class = written.groupby("class_name").size()
    total_written = int(per_class.sum())
    total_rejected = sum(by_reason.values())
    if inputs != total_written + total_rejected:
        raise RuntimeError(
            f"accounting mismatch: {inputs} inputs but {total_written} written + "
            f"{total_rejected} rejected; this is a dermspark bug, please report it"
        )
    per_split: dict[str, dict[str, int]] = {}
    for (split, class_name), count in sorted(per_split_class.items()):
        per_split.setdefault(split, {})[class_name] = int(count)
    per_fold: dict[str, dict[str, int]] = {}
    if folds:
        for (fold, class_name), count in sorted(written.groupby(["fold", "class_name"]).size().items()):
            per_fold.setdefault(str(int(fold)), {})[class_name] = int(count)
    return {
        "inputs": inputs,
        "written": total_written,
        "rejected": total_rejected,
        "by_reason": dict(sorted(by_reason.items())),
        "per_class": {name: int(count) for name, count in sorted(per_class.items())},
        "per_split": per_split,
        "folds": folds,
        # Images per fold and class, what train --cv plans each fold's training from.
        "per_fold": per_fold if folds else None,
    }
