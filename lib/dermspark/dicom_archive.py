"""DICOM copies of image files, made with highdicom as a dermoscopy export would hold them: one
Secondary Capture instance per image (Modality XC or DMS), a fake patient's name, id and birth
date in every header, the body site, in the transfer syntax asked for. For the tests, the
benchmarks and scripts/dicom_archive.py; nothing is fetched.
"""

import io
import os
from dataclasses import dataclass

import numpy as np

# name: (transfer syntax UID, photometric interpretation highdicom encodes it with, lossless)
TRANSFER_SYNTAXES = {
    "explicit_little": ("1.2.840.10008.1.2.1", "RGB", True),
    "implicit_little": ("1.2.840.10008.1.2", "RGB", True),
    "jpeg_baseline": ("1.2.840.10008.1.2.4.50", "YBR_FULL_422", False),
    "jpeg_ls_lossless": ("1.2.840.10008.1.2.4.80", "RGB", True),
    "jpeg2000_lossless": ("1.2.840.10008.1.2.4.90", "YBR_RCT", True),
    "rle": ("1.2.840.10008.1.2.5", "RGB", True),
}
# What a test searches every output for: it must never be copied.
FAKE_PATIENT = {"name": "Zzyzx^Quillonia", "id": "PID-7731-QX", "birth_date": "19230417"}


@dataclass(frozen=True)
class Written:
    path: str
    image_id: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str


# PLR0913: a header's attributes, each with a default, named by the caller
def to_dicom(  # noqa: PLR0913
    pixels: np.ndarray,
    syntax: str,
    image_id: str,
    modality: str = "XC",
    body_part: str = "SKIN",
    study_uid: str | None = None,
    series_uid: str | None = None,
    patient_id: str | None = None,
) -> bytes:
    """One RGB image (uint8, height x width x 3) as a DICOM Part 10 file's bytes."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    uid, photometric, _ = TRANSFER_SYNTAXES[syntax]
    image = hd.sc.SCImage(
        pixel_array=pixels,
        photometric_interpretation=photometric,
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=study_uid or generate_uid(),
        series_instance_uid=series_uid or generate_uid(),
        series_number=1,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="dermspark test",
        patient_id=patient_id or FAKE_PATIENT["id"],
        patient_name=FAKE_PATIENT["name"],
        patient_birth_date=FAKE_PATIENT["birth_date"],
        patient_sex="F",
        patient_orientation=("L", "F"),
        transfer_syntax_uid=uid,
    )
    image.Modality = modality
    image.BodyPartExamined = body_part
    image.PatientAge = "045Y"
    # Free text a real export carries, which must not be copied either.
    image.ImageComments = f"{FAKE_PATIENT['name']} {image_id}"
    buffer = io.BytesIO()
    image.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_copy(
    image_paths: list[str], folder: str, syntax: str, patients: dict[str, str] | None = None
) -> list[Written]:
    """A DICOM copy of each image file under folder/NAME.dcm (the image id kept in the name);
    patients: a fake patient id per image id (FAKE_PATIENT's for the others)."""
    from PIL import Image
    from pydicom import dcmread

    os.makedirs(folder, exist_ok=True)
    written = []
    for path in image_paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        image_id = os.path.splitext(os.path.basename(path))[0]
        content = to_dicom(pixels, syntax, image_id, patient_id=(patients or {}).get(image_id))
        target = os.path.join(folder, f"{image_id}.dcm")
        with open(target, "wb") as handle:
            handle.write(content)
        header = dcmread(io.BytesIO(content), stop_before_pixels=True)
        written.append(
            Written(
                target,
                image_id,
                str(header.SOPInstanceUID),
                str(header.StudyInstanceUID),
                str(header.SeriesInstanceUID),
            )
        )
    return written


def hostile_copies(pixels: np.ndarray) -> dict[str, bytes]:
    """Broken DICOM files made from an image's JPEG-baseline copy, each a new instance (its own
    SOP Instance UID), named by what is wrong: cut in half, its pixel data removed, a wrong image
    size for its pixel data, a transfer syntax no installed plugin decodes (MPEG-2 declared)."""
    good = to_dicom(pixels, "jpeg_baseline", "hostile")
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    def edited(change) -> bytes:
        dataset = dcmread(io.BytesIO(good))
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        change(dataset)
        buffer = io.BytesIO()
        dataset.save_as(buffer)
        return buffer.getvalue()

    return {
        "truncated": edited(lambda dataset: None)[: len(good) // 2],
        "no_pixel_data": edited(lambda dataset: delattr(dataset, "PixelData")),
        "wrong_length": edited(lambda dataset: setattr(dataset, "Rows", int(dataset.Rows) // 3)),
        "unsupported_syntax": edited(
            lambda dataset: setattr(dataset.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2.4.100")
        ),
    }
