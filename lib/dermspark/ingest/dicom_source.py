"""A DICOM export: DICOM files anywhere below <input> (any name: a file is DICOM by its preamble)
and, optionally, <input>/labels.csv.

Labels: labels.csv, one row per instance, `sop_instance_uid` (or `image_id` holding it) and `dx`
required, `lesion_id`, `age`, `sex`, `localization` and `dx_type` read when present; an instance
the CSV does not name is labelled by its own header where that carries a diagnosis
(dicom.diagnosis: Admitting Diagnoses, matched to a known class, the text itself never copied).
The manifest's `dicom.labels_from` counts each. The image id of each file is its SOP Instance UID,
read from its header by the executors (the header only, never the pixels).

Grouping: where the CSV gives no lesion id the split groups by patient: the executors hash each
file's Patient ID, the driver numbers the hashes (`patient-1`, ...) and forgets them, so neither
the id nor its hash reaches the dataset (`dicom.grouped_by` counts lesions and patients). Age and
sex come from the header when the CSV lacks them; body part, when it has no localization.

Frames: a multi-frame file gives one image per frame, `UID_frameK` (K from 0), `frame` K, each
frame an input of its own sharing its instance's label and group (`dicom.extra_frames`).
"""

import hashlib

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.files import list_paths
from dermspark.ingest.sources import METADATA_COLUMNS, Archive, column_or_none, require_layout
from dermspark.metadata import read_table, to_number
from dermspark.storage import join

LABELS_FILE = "labels.csv"
FRAME_SUFFIX = "_frame"
HEADER_COLUMNS = ["path", "image_id", "frames", "patient", "age", "sex", "body_part", "dx"]


def _headers(paths):
    """Runs on executors: each DICOM file's header fields; other files keep their name as id and
    no frame count."""
    from dermspark.files import image_id_of

    rows = []
    for path in paths:
        header = _header(path)
        if header is None:
            rows.append([path, image_id_of(path), None, None, None, None, None, None])
            continue
        found, patient = header
        rows.append(
            [
                path,
                found.get("SOPInstanceUID") or image_id_of(path),
                found["_frames"],
                hashlib.sha256(patient.encode()).hexdigest() if patient else None,
                found.get("PatientAge"),
                found.get("PatientSex"),
                found.get("BodyPartExamined"),
                found["_dx"],
            ]
        )
    return [pd.DataFrame(rows, columns=HEADER_COLUMNS)]


def _header(path: str) -> tuple[dict, str] | None:
    """(allowed attributes, frame count and diagnosis, Patient ID) of a DICOM file, its header
    alone read; None for other files and headers that cannot be read (the decode then says why)."""
    import io

    import pydicom

    from dermspark import dicom
    from dermspark.files import local_file

    try:
        if path.startswith("file:"):
            header = dicom.read_header(local_file(path))
        else:
            content = storage.read_bytes(path)
            header = pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True) if dicom.is_dicom(content) else None
        if header is None:
            return None
        found = dicom.identity(header)
        return (
            {**found.attributes, "_frames": found.frames, "_dx": dicom.diagnosis(header)},
            str(header.get("PatientID", "") or ""),
        )
    except Exception:  # noqa: BLE001 - unreadable or hostile: no DICOM id
        return None


def read_dicom(spark: SparkSession, input_url: str) -> Archive:
    require_layout(input_url, "a DICOM")
    labels_url = join(input_url, LABELS_FILE)
    paths = [path for path in list_paths(spark, [input_url]) if not path.endswith("/" + LABELS_FILE)]
    slices = max(1, min(len(paths) // 200, 4 * spark.sparkContext.defaultParallelism))
    found = pd.concat(
        spark.sparkContext.parallelize(paths, slices).mapPartitions(_headers).collect()
        or [pd.DataFrame(columns=HEADER_COLUMNS)],
        ignore_index=True,
    )
    # The first file of each id (a repeated id is a duplicate_id reject in accounting).
    first = found.drop_duplicates("image_id").set_index("image_id")
    # Patients numbered in order of their hash: the hash itself is dropped here.
    numbers = {
        digest: f"patient-{index + 1}" for index, digest in enumerate(sorted(found["patient"].dropna().unique()))
    }
    from_csv = (
        _csv_rows(read_table(labels_url, ("dx",)), labels_url, first, numbers)
        if storage.exists(labels_url)
        else pd.DataFrame(columns=[*METADATA_COLUMNS, "_labels"])
    )
    from_header = _header_rows(first[~first.index.isin(from_csv["image_id"])], numbers, len(from_csv))
    metadata = pd.concat([from_csv, from_header], ignore_index=True)
    metadata, files = _per_frame(metadata, found, first["frames"])
    return Archive(
        metadata=metadata[list(METADATA_COLUMNS)],
        files=files,
        image_folders=[input_url],
        vocabulary="any",
        provenance=_provenance(metadata, len(files) - len(found)),
    )


def _csv_rows(table: pd.DataFrame, url: str, first: pd.DataFrame, numbers: dict) -> pd.DataFrame:
    uid = "sop_instance_uid" if "sop_instance_uid" in table.columns else "image_id"
    if uid not in table.columns:
        raise DermsparkError(f"{url} needs a sop_instance_uid (or image_id) column")
    image_ids = table[uid]
    lesion = column_or_none(table, "lesion_id")

    def header_field(name: str) -> pd.Series:
        return image_ids.map(first[name])

    has_lesion = lesion.notna() & (lesion != "")
    return pd.DataFrame(
        {
            "image_id": image_ids,
            "lesion_id": lesion.where(has_lesion, header_field("patient").map(numbers)),
            "dx": table["dx"].str.strip().str.lower(),
            "age": to_number(column_or_none(table, "age")).fillna(to_number(header_field("age"))),
            "sex": column_or_none(table, "sex").fillna(header_field("sex").map(_sex)),
            "localization": column_or_none(table, "localization").fillna(header_field("body_part").map(_site)),
            "dx_type": column_or_none(table, "dx_type"),
            "_malformed": table["_malformed"],
            "_row": table["_row"],
            "_labels": "csv",
            "_group": _group(has_lesion.to_numpy(), header_field("patient").notna().to_numpy()),
        }
    )


def _header_rows(headers: pd.DataFrame, numbers: dict, first_row: int) -> pd.DataFrame:
    """A metadata row for each instance the CSV does not name whose header has a diagnosis."""
    labelled = headers[headers["dx"].notna()]
    return pd.DataFrame(
        {
            "image_id": labelled.index.to_numpy(dtype=object),
            "lesion_id": labelled["patient"].map(numbers).to_numpy(dtype=object),
            "dx": labelled["dx"].to_numpy(dtype=object),
            "age": to_number(labelled["age"]).to_numpy(),
            "sex": labelled["sex"].map(_sex).to_numpy(dtype=object),
            "localization": labelled["body_part"].map(_site).to_numpy(dtype=object),
            "dx_type": None,
            "_malformed": False,
            "_row": np.arange(first_row, first_row + len(labelled)),
            "_labels": "header",
            "_group": _group(np.zeros(len(labelled), bool), labelled["patient"].notna().to_numpy()),
        }
    )


def _per_frame(metadata: pd.DataFrame, found: pd.DataFrame, frames_of_id: pd.Series):
    """Metadata rows and files with a row per frame: a multi-frame instance's rows repeated, each
    with its frame's id; `frame` on each file (0 for a single-frame DICOM file, None for others)."""
    files = _repeat(found[["image_id", "path"]], found["frames"].to_numpy())
    counts = metadata["image_id"].map(frames_of_id).to_numpy()
    return _repeat(metadata, counts).drop(columns="frame"), files.astype(object)


def _repeat(frame: pd.DataFrame, frames: np.ndarray) -> pd.DataFrame:
    dicom = pd.notna(frames)
    counts = np.where(dicom, pd.to_numeric(pd.Series(frames), errors="coerce").fillna(1), 1).astype(int)
    out = frame.iloc[np.repeat(np.arange(len(frame)), counts)].reset_index(drop=True)
    within = np.arange(len(out)) - np.repeat(np.cumsum(counts) - counts, counts)
    multi = np.repeat(counts > 1, counts)
    out["image_id"] = np.where(
        multi, out["image_id"].astype(str) + FRAME_SUFFIX + within.astype(str), out["image_id"].to_numpy(dtype=object)
    )
    numbers = within.astype(object)
    numbers[~np.repeat(dicom, counts)] = None  # a frame number only for a DICOM file's rows
    out["frame"] = numbers
    return out


def _provenance(metadata: pd.DataFrame, extra_frames: int) -> dict:
    """What the manifest says of a DICOM archive, per image id (pipeline counts the written ones)."""
    by_id = metadata.drop_duplicates("image_id").set_index("image_id")
    return {"extra_frames": extra_frames, "labels_from": by_id["_labels"], "grouped_by": by_id["_group"]}


def _group(has_lesion: np.ndarray, has_patient: np.ndarray) -> np.ndarray:
    return np.where(has_lesion, "lesion", np.where(has_patient, "patient", "image"))


def _sex(value):
    return {"F": "female", "M": "male", "O": "other"}.get(value) if isinstance(value, str) else None


def _site(value):
    return value.lower().replace("_", " ") if isinstance(value, str) else None
