"""DICOM end to end on real images: the 250 full-size HAM10000 images copied to DICOM in several
transfer syntaxes, with four hostile files beside them, through the real ingest, train and score
jobs (spark-submit.sh), checked the way a hospital would check them.

    DERMSPARK_DATA=../shared/data .venv/bin/python scripts/dicom_result.py --output RUNS/dicom-result

Checks and prints: ingest of each copy against ingest of the JPEG archive, image by image
(identical, or the largest difference in grey levels; lossless syntaxes must be identical at
299x299, which JPEG decodes at full size; 75x100 is decoded from JPEG at a reduced draft
scale, so the JPEG archive's pixels there differ from the DICOM copy's, which holds the full
decode); a model trained on one copy; every copy scored with --dicom-sr, every prediction
carrying its UIDs and each hostile file its reason, and against the same images scored as
JPEG; each SR read back with pydicom and parsed by highdicom, referencing a scored instance;
the fake patient's name, id and birth date searched for in every dataset, bundle, predictions
file and log line. Steps whose output exists are skipped,
so a rerun resumes. Writes OUTPUT/dicom_result.json.
"""

import argparse
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
from dermspark.dicom_archive import FAKE_PATIENT, TRANSFER_SYNTAXES, hostile_copies, write_copy
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SIZES = "299x299,75x100"
SYNTAXES = "explicit_little,jpeg_ls_lossless,jpeg2000_lossless,rle,jpeg_baseline"


def submit(log: Path, *args: str) -> None:
    """A real job through spark-submit.sh, its output kept (the patient search reads it)."""
    print("[dicom]", " ".join(args[:1]), args[args.index("--output") + 1], flush=True)
    with open(log, "ab") as handle:
        subprocess.run([str(ROOT / "spark-submit.sh"), *args], check=True, stdout=handle, stderr=subprocess.STDOUT)


def make_copies(archive: Path, out: Path, syntaxes: list[str]) -> dict[str, dict[str, str]]:
    """OUT/dicom/SYNTAX/{labels.csv, images/*.dcm}; a fake patient per lesion; the hostile
    files beside the first syntax's images. Returns {syntax: {SOP UID: HAM image id}}."""
    with open(archive / "HAM10000_metadata.csv", newline="") as handle:
        metadata = {row["image_id"]: row for row in csv.DictReader(handle)}
    images = sorted(archive.glob("HAM10000_images_part_*/*.jpg"))
    lesions = sorted({metadata[path.stem]["lesion_id"] for path in images})
    patients = {path.stem: f"{FAKE_PATIENT['id']}-{lesions.index(metadata[path.stem]['lesion_id'])}" for path in images}
    uids = {}
    for number, syntax in enumerate(syntaxes):
        folder = out / "dicom" / syntax
        if not (folder / "labels.csv").exists():
            written = write_copy([str(path) for path in images], str(folder / "images"), syntax, patients)
            rows = [
                (item.sop_instance_uid, metadata[item.image_id]["lesion_id"], metadata[item.image_id]["dx"])
                for item in written
            ]
            if number == 0:
                rows += _hostile(images[0], folder / "images")
            with open(folder / "labels.csv", "w", newline="") as handle:
                csv.writer(handle).writerows([("sop_instance_uid", "lesion_id", "dx"), *rows])
        uids[syntax] = _uids(folder / "images")
    return uids


def _hostile(image: Path, folder: Path) -> list[tuple[str, str, str]]:
    """The hostile files, each with a label row when its header names its UID: a labelled
    file reaches the decode, which must give the reason."""
    import pydicom

    rows = []
    for name, content in hostile_copies(np.asarray(Image.open(image).convert("RGB"))).items():
        (folder / f"hostile-{name}.dcm").write_bytes(content)
        try:
            uid = str(pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True).SOPInstanceUID)
        except Exception:  # noqa: BLE001 - a header cut short: the file is a no_metadata reject
            continue
        rows.append((uid, f"hostile-{name}", "nv"))
    return rows


def _uids(folder: Path) -> dict[str, str]:
    import pydicom

    found = {}
    for path in folder.glob("*.dcm"):
        if not path.name.startswith("hostile-"):
            found[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path.stem
    return found


def dataset_pixels(folder: Path, size: str) -> dict[str, np.ndarray]:
    table = ds.dataset(folder / f"images_{size}", format="parquet").to_table(columns=["image_id", "image"])
    return {
        image_id: np.asarray(Image.open(io.BytesIO(image)))
        for image_id, image in zip(table["image_id"].to_pylist(), table["image"].to_pylist(), strict=True)
    }


def compare(out: Path, syntax: str, uids: dict[str, str]) -> dict:
    """Each size: images in both datasets, how many identical, the largest difference."""
    figures = {}
    for size in SIZES.split(","):
        jpeg, copy = dataset_pixels(out / "ingest" / "jpeg", size), dataset_pixels(out / "ingest" / syntax, size)
        pairs = [(jpeg[uids[uid]], pixels) for uid, pixels in copy.items() if uids.get(uid) in jpeg]
        differences = [int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in pairs]
        figures[size] = {
            "images": len(pairs),
            "jpeg_images": len(jpeg),
            "identical": differences.count(0),
            "max_difference": max(differences, default=None),
            "mean_abs_difference": round(
                float(np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in pairs])), 3
            )
            if pairs
            else None,
        }
    return figures


def check_predictions(out: Path) -> dict:
    table = ds.dataset(out / "scores" / "predictions", format="parquet", partitioning="hive").to_table().to_pandas()
    scored = table[table["error"].isna()]
    uid_columns = ["study_instance_uid", "series_instance_uid", "sop_instance_uid"]
    errors = table[table["error"].notna()]
    return {
        "rows": len(table),
        "scored": len(scored),
        "scored_with_all_uids": int(scored[uid_columns].notna().all(axis=1).sum()),
        "errors": {Path(path).name: reason for path, reason in zip(errors["path"], errors["error"], strict=True)},
        "sop_uids": set(scored["sop_instance_uid"]),
    }


def agreement(out: Path, uids: dict[str, dict[str, str]]) -> dict:
    """Per syntax: the DICOM copy's predictions against the same images scored as JPEG files."""

    def table(folder: Path):
        return ds.dataset(folder / "predictions", format="parquet", partitioning="hive").to_table().to_pandas()

    jpeg = table(out / "jpeg-scores").set_index("image_id")
    copies = table(out / "scores")
    copies = copies[copies["error"].isna()]
    figures = {}
    for syntax, by_uid in uids.items():
        rows = copies[copies["sop_instance_uid"].isin(by_uid.keys())]
        paired = jpeg.loc[rows["sop_instance_uid"].map(by_uid)]
        figures[syntax] = {
            "images": len(rows),
            "same_predicted_class": int(
                (paired["predicted_label"].to_numpy() == rows["predicted_label"].to_numpy()).sum()
            ),
            "max_confidence_difference": round(
                float(np.abs(paired["confidence"].to_numpy() - rows["confidence"].to_numpy()).max()), 4
            ),
        }
    return figures


def check_reports(folder: Path, scored_uids: set) -> dict:
    import highdicom as hd
    import pydicom

    read = parsed = referencing = 0
    for path in sorted(folder.glob("*.dcm")):
        dataset = pydicom.dcmread(path)
        read += 1
        hd.sr.Comprehensive3DSR.from_dataset(dataset)
        parsed += 1
        evidence = dataset.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
        referencing += all(str(item.ReferencedSOPInstanceUID) in scored_uids for item in evidence.ReferencedSOPSequence)
    return {"files": read, "parsed_by_highdicom": parsed, "referencing_a_scored_instance": referencing}


def patient_search(out: Path) -> dict:
    """Files under the outputs (not the copies nor the SRs, which carry the patient by design)
    holding any of the fake patient's values."""
    values = [value.encode() for value in (*FAKE_PATIENT.values(), FAKE_PATIENT["name"].replace("^", " "))]
    searched, hits = 0, []
    for name in ("ingest", "model", "model.checkpoints", "scores", "logs"):
        for path in (out / name).rglob("*"):
            if path.is_file():
                searched += 1
                content = path.read_bytes()
                hits += [str(path) for value in values if value in content]
    return {"files_searched": searched, "files_with_patient_data": hits}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--syntaxes", default=SYNTAXES, help=f"of {', '.join(TRANSFER_SYNTAXES)}")
    parser.add_argument("--epochs", default="5")
    args = parser.parse_args(argv)
    data = Path(os.environ.get("DERMSPARK_DATA", ROOT.parent / "shared" / "data"))
    archive, out = data / "ham10000-600x450", args.output.resolve()
    syntaxes = [name for name in args.syntaxes.split(",") if name]
    (out / "logs").mkdir(parents=True, exist_ok=True)
    log = out / "logs" / "jobs.log"
    uids = make_copies(archive, out, syntaxes)
    common = ["--sizes", SIZES, "--seed", "7", "--mode", "overwrite"]
    if not (out / "ingest" / "jpeg" / "manifest.json").exists():
        submit(
            log,
            "ingest",
            "--source",
            "ham10000",
            "--input",
            str(archive),
            "--output",
            str(out / "ingest" / "jpeg"),
            "--max-reject-fraction",
            "1",
            *common,
        )
    manifests = {}
    for syntax in syntaxes:
        target = out / "ingest" / syntax
        if not (target / "manifest.json").exists():
            submit(
                log,
                "ingest",
                "--source",
                "dicom",
                "--input",
                str(out / "dicom" / syntax),
                "--output",
                str(target),
                "--max-reject-fraction",
                "0.1",
                *common,
            )
        manifests[syntax] = json.loads((target / "manifest.json").read_text())
    if not (out / "model" / "model").exists():
        submit(
            log,
            "train",
            "--dataset",
            str(out / "ingest" / syntaxes[0]),
            "--output",
            str(out / "model"),
            "--model",
            "benbrahim_cnn",
            "--epochs",
            args.epochs,
            "--num-proc",
            "2",
        )
    links = out / "score-input"
    links.mkdir(exist_ok=True)
    for syntax in syntaxes:
        if not (links / syntax).exists():
            (links / syntax).symlink_to(out / "dicom" / syntax / "images")
    if not (out / "scores" / "runs").exists():
        submit(
            log,
            "score",
            "--model",
            str(out / "model" / "model"),
            "--input",
            str(links),
            "--output",
            str(out / "scores"),
            "--links",
            "follow",
            "--dicom-sr",
            str(out / "sr"),
        )
    if not (out / "jpeg-scores" / "runs").exists():
        submit(
            log,
            "score",
            "--model",
            str(out / "model" / "model"),
            "--input",
            str(archive),
            "--output",
            str(out / "jpeg-scores"),
        )
    predictions = check_predictions(out)
    result = {
        "syntaxes": syntaxes,
        "ingest": {
            syntax: {
                "inputs": manifests[syntax]["inputs"],
                "written": manifests[syntax]["written"],
                "by_reason": manifests[syntax]["by_reason"],
                "dicom": manifests[syntax].get("dicom"),
                "against_jpeg": compare(out, syntax, uids[syntax]),
            }
            for syntax in syntaxes
        },
        "scoring": {key: value for key, value in predictions.items() if key != "sop_uids"},
        "against_jpeg_scoring": agreement(out, uids),
        "structured_reports": check_reports(out / "sr", predictions["sop_uids"]),
        "patient_search": patient_search(out),
    }
    (out / "dicom_result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
