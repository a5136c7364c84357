"""ingest --source dicom: a labels CSV keyed by SOP Instance UID, DICOM files of any name, the
same pixels as the JPEG archive they were made from, the split grouped by patient without the
patient's id reaching the dataset."""

import csv
import io
import json
from pathlib import Path

import numpy as np
from dermspark.dicom_archive import FAKE_PATIENT, to_dicom
from dermspark.ingest.pipeline import run_ingest
from dermspark.settings.ingest import IngestSettings
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
        run_ingest(
            spark,
            IngestSettings(
                source=source,
                input=str(tmp_path / folder),
                output=str(tmp_path / f"out-{source}"),
                num_files=2,
                split="60/20/20",
            ),
        )
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


def test_train_and_score_on_dicom_leave_no_patient_data_anywhere(spark, real_data, mlflow_server, tmp_path, capfd):
    """The DICOM export ingested, a model trained on it with MLflow tracking, the export scored
    with Structured Reports: the fake patient's name, id and birth date are in no dataset, bundle,
    report, predictions table, MLflow artifact or log line (the SRs, which go back to the PACS,
    carry them by design)."""
    from dermspark.score.job import run_score
    from dermspark.settings.score import ScoreSettings
    from dermspark.settings.train import TrainSettings
    from dermspark.train.job import run_train

    _archives(real_data, tmp_path)
    run_ingest(
        spark,
        IngestSettings(
            source="dicom",
            input=str(tmp_path / "dicom"),
            output=str(tmp_path / "dataset"),
            num_files=2,
            split="60/20/20",
        ),
    )
    trained = run_train(
        spark,
        TrainSettings(
            dataset=str(tmp_path / "dataset"),
            output=str(tmp_path / "model"),
            epochs=1,
            batch_size=8,
            num_proc=2,
            mlflow_uri=mlflow_server,
            experiment="dicom-privacy",
        ),
    )
    assert trained.metrics["test"]["count"] > 0
    summary = run_score(
        spark,
        ScoreSettings(
            model=str(tmp_path / "model" / "model"),
            input=str(tmp_path / "dicom"),
            output=str(tmp_path / "scores"),
            dicom_sr=str(tmp_path / "sr"),
        ),
    )
    assert summary.scored == IMAGES and summary.dicom_reports["written"] == IMAGES
    logged = "".join(capfd.readouterr()).encode()
    mlflow_files = [path for folder in tmp_path.parent.glob("mlflow*") for path in folder.rglob("*") if path.is_file()]
    outputs = [
        path
        for name in ("dataset", "model", "model.checkpoints", "scores")
        for path in (tmp_path / name).rglob("*")
        if path.is_file()
    ]
    assert outputs and mlflow_files
    searched = logged + b"".join(path.read_bytes() for path in outputs + mlflow_files)
    for value in (*FAKE_PATIENT.values(), FAKE_PATIENT["name"].replace("^", " ")):
        assert value.encode() not in searched, value
    # The reports do carry the patient, as a PACS needs to file them.
    assert FAKE_PATIENT["id"].encode() in next((tmp_path / "sr").glob("*.dcm")).read_bytes()


def _edited(content: bytes, **attributes) -> bytes:
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(content))
    for name, value in attributes.items():
        setattr(dataset, name, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def test_labels_from_headers_and_a_frame_per_row(spark, real_data, tmp_path):
    """No labels.csv: each instance's own diagnosis (words or a code, in Admitting Diagnoses)
    labels it, free text that names no class is rejected without being copied, a two-frame file
    gives two rows sharing a patient, and the manifest counts where labels and groups came from."""
    import pydicom
    from dermspark.images import DecodeOptions, decode_sizes
    from pydicom.data import get_testdata_file

    paths = sorted((real_data / "ham10000-200x150" / "images").glob("*.jpg"))[:4]
    export = tmp_path / "export"
    export.mkdir()
    said = ["Melanoma", "nv", "Seborrheic keratosis", "Zzyzx complains of an itch"]
    for index, (path, text) in enumerate(zip(paths, said, strict=True)):
        content = to_dicom(
            np.asarray(Image.open(path).convert("RGB")),
            "explicit_little",
            path.stem,
            patient_id=f"{FAKE_PATIENT['id']}-{index % 2}",
        )
        (export / f"{index}.dcm").write_bytes(_edited(content, AdmittingDiagnosesDescription=text))
    two_frames = _edited(
        Path(get_testdata_file("SC_rgb_rle_2frame.dcm")).read_bytes(),
        AdmittingDiagnosesDescription="basal cell carcinoma",
        PatientID=f"{FAKE_PATIENT['id']}-1",
    )
    (export / "frames.dcm").write_bytes(two_frames)
    uid = str(pydicom.dcmread(io.BytesIO(two_frames)).SOPInstanceUID)

    run_ingest(
        spark,
        IngestSettings(
            source="dicom",
            input=str(export),
            output=str(tmp_path / "out"),
            num_files=1,
            split="60/20/20",
            max_reject_fraction=0.5,
        ),
    )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["inputs"], manifest["written"], manifest["by_reason"]) == (6, 5, {"unknown_label": 1})
    assert manifest["dicom"] == {"extra_frames": 1, "labels_from": {"header": 5}, "grouped_by": {"patient": 5}}
    rows = {
        row["image_id"]: row
        for row in spark.read.parquet(str(tmp_path / "out" / "images_75x100")).drop("image").collect()
    }
    assert {rows[f"{uid}_frame{number}"]["frame"] for number in (0, 1)} == {0, 1}
    assert sorted(row["dx"] for row in rows.values()) == ["bcc", "bcc", "bkl", "mel", "nv"]
    assert len({row["lesion_id"] for row in rows.values()}) == 2
    second = spark.read.parquet(str(tmp_path / "out" / "images_75x100")).where(f"image_id = '{uid}_frame1'").first()
    expected = decode_sizes(two_frames, [(75, 100)], DecodeOptions(), frame=1)[0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(second["image"]))), expected)
    written = b"".join(path.read_bytes() for path in (tmp_path / "out").rglob("*") if path.is_file())
    assert b"Zzyzx" not in written and b"itch" not in written
