"""ingest --source dicom: a labels CSV keyed by SOP Instance UID, DICOM files of any name, the
same pixels as the JPEG archive they were made from, the split grouped by patient without the
patient's id reaching the dataset."""

import csv
import io
import json

import numpy as np
from dermspark.dicom_archive import FAKE_PATIENT, to_dicom
from dermspark.ingest.pipeline import run_ingest
from dermspark.settings import IngestSettings
from PIL import Image

IMAGES = 42


def _archives(real_data, root):
    """The same real images twice: DICOM (RLE, lossless; 14 patients of 3 images, named .bin)
    and JPEG (labels_csv, named by the DICOM copy's SOP Instance UID)."""
    import pydicom

    with open(real_data / "ham10000-200x150" / "HAM10000_metadata.csv", newline="") as handle:
        metadata = {row["image_id"]: row for row in csv.DictReader(handle)}
    paths = sorted((real_data / "ham10000-200x150" / "images").glob("*.jpg"))[:IMAGES]
    (root / "dicom" / "export").mkdir(parents=True)
    (root / "jpeg" / "images").mkdir(parents=True)
    labels = []
    for index, path in enumerate(paths):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        content = to_dicom(pixels, "rle", path.stem, patient_id=f"{FAKE_PATIENT['id']}-{index // 3}")
        uid = str(pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True).SOPInstanceUID)
        (root / "dicom" / "export" / f"{index:03d}.bin").write_bytes(content)
        Image.fromarray(pixels).save(root / "jpeg" / "images" / f"{uid}.png")
        labels.append((uid, metadata[path.stem]["dx"]))
    for folder, key in (("dicom", "sop_instance_uid"), ("jpeg", "image_id")):
        with open(root / folder / "labels.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([key, "dx"])
            writer.writerows(labels)


def _pixels(spark, dataset) -> dict[str, np.ndarray]:
    rows = spark.read.parquet(str(dataset / "images_75x100")).select("image_id", "image").collect()
    return {row["image_id"]: np.asarray(Image.open(io.BytesIO(row["image"]))) for row in rows}


def test_dicom_ingest_matches_the_image_archive(spark, real_data, tmp_path):
    _archives(real_data, tmp_path)
    for source, folder in (("dicom", "dicom"), ("labels_csv", "jpeg")):
        run_ingest(spark, IngestSettings(source=source, input=str(tmp_path / folder), output=str(tmp_path / f"out-{source}"),
                                         num_files=2, split="60/20/20"))
    from_dicom, from_images = _pixels(spark, tmp_path / "out-dicom"), _pixels(spark, tmp_path / "out-labels_csv")
    assert len(from_dicom) == IMAGES and from_dicom.keys() == from_images.keys()
    for image_id, pixels in from_dicom.items():
        assert np.array_equal(pixels, from_images[image_id]), image_id
    manifest = json.loads((tmp_path / "out-dicom" / "manifest.json").read_text())
    assert manifest["inputs"] == IMAGES == manifest["written"]
    groups = spark.read.parquet(str(tmp_path / "out-dicom" / "images_75x100")).select("lesion_id", "split").collect()
    assert {row["lesion_id"] for row in groups} == {f"patient-{number}" for number in range(1, 15)}
    by_patient = {}
    for row in groups:
        by_patient.setdefault(row["lesion_id"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in by_patient.values())  # a patient in one split
    written = b"".join(path.read_bytes() for path in (tmp_path / "out-dicom").rglob("*") if path.is_file())
    for value in (*FAKE_PATIENT.values(), FAKE_PATIENT["name"].replace("^", " ")):
        assert value.encode() not in written
