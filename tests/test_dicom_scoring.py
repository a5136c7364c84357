"""Scoring DICOM: files told apart by content, a row per frame with its UIDs, hostile files a
reason, and no patient data in any output file or log."""

import shutil
from pathlib import Path

import numpy as np
from dermspark.dicom_archive import FAKE_PATIENT, TRANSFER_SYNTAXES, to_dicom
from PIL import Image


def _folder(real_data: Path, folder: Path) -> dict[str, str]:
    """Real images as DICOM in every transfer syntax (named .img, so the extension says nothing),
    a two-frame RLE file pydicom ships, a DICOM file cut short, and one plain JPEG. Returns
    {file name: SOP Instance UID} of the DICOM copies."""
    import io

    import pydicom
    from pydicom.data import get_testdata_file

    folder.mkdir()
    paths = sorted((real_data / "ham10000-200x150" / "images").glob("*.jpg"))[: len(TRANSFER_SYNTAXES)]
    uids = {}
    for path, syntax in zip(paths, sorted(TRANSFER_SYNTAXES), strict=True):
        content = to_dicom(np.asarray(Image.open(path).convert("RGB")), syntax, path.stem)
        (folder / f"{path.stem}_{syntax}.img").write_bytes(content)
        uids[f"{path.stem}_{syntax}.img"] = str(pydicom.dcmread(io.BytesIO(content)).SOPInstanceUID)
    shutil.copy(get_testdata_file("SC_rgb_rle_2frame.dcm"), folder / "two_frames.dcm")
    (folder / "cut.dcm").write_bytes((folder / f"{paths[0].stem}_explicit_little.img").read_bytes()[:3000])
    shutil.copy(paths[0], folder / "plain.jpg")
    return uids


def test_scoring_a_folder_of_dicom(spark, pipeline, real_data, tmp_path, capfd):
    from dermspark.score.job import run_score
    from dermspark.settings.score import ScoreSettings

    uids = _folder(real_data, tmp_path / "pacs")
    output = tmp_path / "out"
    summary = run_score(
        spark,
        ScoreSettings(
            model=str(pipeline / "model" / "model"),
            input=str(tmp_path / "pacs"),
            output=str(output),
            dicom_sr=str(tmp_path / "sr"),
        ),
    )
    rows = {
        (Path(row["path"]).name, row["frame"]): row for row in spark.read.parquet(str(output / "predictions")).collect()
    }
    files = len(uids) + 3
    assert summary.inputs == files and summary.record["extra_frames"] == 1
    assert summary.inputs + summary.record["extra_frames"] == summary.scored + summary.errors + summary.skipped
    assert len(rows) == files + 1
    for name, uid in uids.items():
        row = rows[(name, 0)]
        assert row["error"] is None and row["predicted_label"] is not None, (name, row["error_detail"])
        assert row["image_id"] == row["sop_instance_uid"] == uid
        assert row["study_instance_uid"] and row["series_instance_uid"]
    first, second = rows[("two_frames.dcm", 0)], rows[("two_frames.dcm", 1)]
    assert first["error"] is None and second["error"] is None and first["sha256"] == second["sha256"]
    assert first["sop_instance_uid"] == second["sop_instance_uid"]
    assert rows[("cut.dcm", 0)]["error"] == "corrupt"
    plain = rows[("plain.jpg", None)]
    assert plain["sop_instance_uid"] is None and plain["image_id"] == Path(plain["path"]).stem
    _check_reports(tmp_path / "sr", rows, summary)
    # Patient data never leaves the headers: not in any file written, nor in the log.
    logged = "".join(capfd.readouterr())
    written = b"".join(path.read_bytes() for path in output.rglob("*") if path.is_file())
    for value in FAKE_PATIENT.values():
        assert value.encode() not in written and value not in logged
        assert value.replace("^", " ").encode() not in written


def _check_reports(folder: Path, rows: dict, summary) -> None:
    """One SR per scored instance, which pydicom reads and highdicom parses back, referencing its
    source by UID and holding the row's predicted class and probabilities."""
    import highdicom as hd
    import pydicom

    scored = [row for row in rows.values() if row["sop_instance_uid"] and row["error"] is None]
    instances = {
        row["sop_instance_uid"]: [other for other in scored if other["sop_instance_uid"] == row["sop_instance_uid"]]
        for row in scored
    }
    assert summary.dicom_reports["written"] == len(instances) == len(list(folder.glob("*.dcm")))
    assert summary.dicom_reports["failed"] == 0
    for uid, frames in instances.items():
        dataset = pydicom.dcmread(folder / f"{uid}.dcm")
        assert dataset.Modality == "SR"
        report = hd.sr.Comprehensive3DSR.from_dataset(dataset)
        referenced = {
            str(item.ReferencedSOPInstanceUID)
            for item in dataset.CurrentRequestedProcedureEvidenceSequence[0]
            .ReferencedSeriesSequence[0]
            .ReferencedSOPSequence
        }
        assert referenced == {uid}
        groups = report.content.get_image_measurement_groups()
        assert len(groups) == len(frames)
        text = str(dataset)
        for row in frames:
            assert "Predicted class" in text and row["predicted_label"] in text
