"""A DICOM export: <input>/labels.csv and DICOM files anywhere below <input> (any name: a file is
DICOM by its preamble).

labels.csv: one row per instance, `sop_instance_uid` (or `image_id` holding it) and `dx`
required; `lesion_id`, `age`, `sex`, `localization` and `dx_type` read when present. The image id
of each file is its SOP Instance UID, read from its header by the executors (the header only,
never the pixels). Where the CSV gives no lesion id the split groups by patient: the executors
hash each file's Patient ID, the driver numbers the hashes (`patient-1`, ...) and forgets them,
so neither the id nor its hash reaches the dataset. Age and sex come from the header when the
CSV lacks them; body part, when the CSV has no localization. Ingest takes one image per
instance: a multi-frame file's first frame (scoring reads every frame).
"""

import hashlib

import pandas as pd
from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.files import list_paths
from dermspark.ingest.sources import METADATA_COLUMNS, Archive, column_or_none, require_layout
from dermspark.metadata import read_table, to_number
from dermspark.storage import join

LABELS_FILE = "labels.csv"
HEADER_COLUMNS = ["path", "image_id", "frames", "patient", "age", "sex", "body_part"]


def _headers(paths):
    """Runs on executors: each DICOM file's header fields; other files keep their name as id."""
    from dermspark.files import image_id_of

    rows = []
    for path in paths:
        header = _header(path)
        if header is None:
            rows.append([path, image_id_of(path), 1, None, None, None, None])
            continue
        found, patient = header
        rows.append([path, found.get("SOPInstanceUID") or image_id_of(path), found["_frames"],
                     hashlib.sha256(patient.encode()).hexdigest() if patient else None,
                     found.get("PatientAge"), found.get("PatientSex"), found.get("BodyPartExamined")])
    return [pd.DataFrame(rows, columns=HEADER_COLUMNS)]


def _header(path: str) -> tuple[dict, str] | None:
    """(allowed attributes and frame count, Patient ID) of a DICOM file, its header alone read;
    None for other files and headers that cannot be read (the decode then gives the reason)."""
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
        return {**found.attributes, "_frames": found.frames}, str(header.get("PatientID", "") or "")
    except Exception:  # noqa: BLE001 - unreadable or hostile: no DICOM id
        return None


def read_dicom(spark: SparkSession, input_url: str) -> Archive:
    require_layout(input_url, "a DICOM", (LABELS_FILE,))
    table = read_table(join(input_url, LABELS_FILE), ("dx",))
    uid = "sop_instance_uid" if "sop_instance_uid" in table.columns else "image_id"
    if uid not in table.columns:
        raise DermsparkError(f"{join(input_url, LABELS_FILE)} needs a sop_instance_uid (or image_id) column")
    paths = [path for path in list_paths(spark, [input_url]) if not path.endswith("/" + LABELS_FILE)]
    slices = max(1, min(len(paths) // 200, 4 * spark.sparkContext.defaultParallelism))
    found = pd.concat(spark.sparkContext.parallelize(paths, slices).mapPartitions(_headers).collect()
                      or [pd.DataFrame(columns=HEADER_COLUMNS)], ignore_index=True)
    # The first file of each id (a repeated id is a duplicate_id reject in accounting).
    first = found.drop_duplicates("image_id").set_index("image_id")
    # Patients numbered in order of their hash: the hash itself is dropped here.
    numbers = {digest: f"patient-{index + 1}" for index, digest in enumerate(sorted(found["patient"].dropna().unique()))}
    image_ids = table[uid]
    lesion = column_or_none(table, "lesion_id")

    def header_field(name: str) -> pd.Series:
        return image_ids.map(first[name])

    metadata = pd.DataFrame({
        "image_id": image_ids,
        "lesion_id": lesion.where(lesion.notna() & (lesion != ""), header_field("patient").map(numbers)),
        "dx": table["dx"].str.strip().str.lower(),
        "age": to_number(column_or_none(table, "age")).fillna(to_number(header_field("age"))),
        "sex": column_or_none(table, "sex").fillna(header_field("sex").map(_sex)),
        "localization": column_or_none(table, "localization").fillna(header_field("body_part").map(_site)),
        "dx_type": column_or_none(table, "dx_type"),
        "_malformed": table["_malformed"],
        "_row": table["_row"],
    })
    return Archive(metadata=metadata[list(METADATA_COLUMNS)], files=found[["image_id", "path"]].astype(object),
                   image_folders=[input_url], vocabulary="any")


def _sex(value):
    return {"F": "female", "M": "male", "O": "other"}.get(value) if isinstance(value, str) else None


def _site(value):
    return value.lower().replace("_", " ") if isinstance(value, str) else None
