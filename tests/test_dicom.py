"""DICOM through the shared decoder: copies of real HAM10000 images in six transfer syntaxes,
pydicom's own test files (the exotic encodings it ships), and hostile files, each ending in
pixels or a reason; the attributes that may be copied, and only those."""

import io
from pathlib import Path

import numpy as np
import pytest
from dermspark import dicom
from dermspark.dicom_archive import FAKE_PATIENT, TRANSFER_SYNTAXES, to_dicom
from dermspark.images import DecodeOptions, ImageRejected, decode_image, decode_sizes
from PIL import Image

NEAREST = DecodeOptions(resample="nearest")


def _shipped(name: str) -> bytes:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file(name)).read_bytes()


@pytest.fixture(scope="module")
def lesions(real_data) -> list[Path]:
    return sorted((real_data / "ham10000-200x150" / "images").glob("*.jpg"))[:3]


@pytest.mark.parametrize("syntax", sorted(TRANSFER_SYNTAXES))
def test_a_dicom_copy_decodes_as_its_image(lesions, syntax):
    lossless = TRANSFER_SYNTAXES[syntax][2]
    for path in lesions:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        content = to_dicom(pixels, syntax, path.stem)
        assert dicom.is_dicom(content) and not path.name.endswith(".dcm")
        found = decode_image(content, 150, 200, NEAREST).astype(int)
        expected = decode_image(path.read_bytes(), 150, 200, NEAREST).astype(int)
        if lossless:
            assert np.array_equal(found, expected), syntax
        else:
            assert np.abs(found - expected).mean() < 2.0, syntax


@pytest.mark.parametrize(
    ("name", "photometric"),
    [
        ("SC_rgb_dcmtk_+eb+cy+np.dcm", "YBR_FULL_422"),
        ("SC_rgb_dcmtk_+eb+cy+s4.dcm", "YBR_FULL"),
        ("SC_rgb_small_odd_big_endian.dcm", "RGB"),
        ("examples_palette.dcm", "PALETTE COLOR"),
        ("SC_rgb_jpeg_dcmtk.dcm", "YBR_FULL"),
        ("JPGExtended.dcm", "MONOCHROME2"),
        ("MR_small_jpeg_ls_lossless.dcm", "MONOCHROME2"),
        ("MR_small_RLE.dcm", "MONOCHROME2"),
        ("MR_small_implicit.dcm", "MONOCHROME2"),
        ("JPEG2000.dcm", "MONOCHROME2"),
    ],
)
def test_pydicoms_own_files_decode_to_rgb(name, photometric):
    content = _shipped(name)
    dataset = dicom.read(content)
    assert str(dataset.PhotometricInterpretation) == photometric
    rgb = dicom.frame_rgb(dataset)
    assert rgb.dtype == np.uint8 and rgb.shape == (dataset.Rows, dataset.Columns, 3)
    assert rgb.max() > rgb.min()  # not a blank image
    if photometric == "PALETTE COLOR":
        assert (rgb[..., 0] != rgb[..., 1]).any()  # colours, not grey
    assert decode_image(content, 32, 32).shape == (32, 32, 3)


def test_signed_16_bit_monochrome_uses_the_files_window_and_rescale():
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    dataset = dicom.read(_shipped("CT_small.dcm"))  # signed 16-bit, rescale intercept -1024
    assert dataset.PixelRepresentation == 1 and dataset.BitsStored == 16
    rgb = dicom.frame_rgb(dataset)
    values = np.asarray(apply_modality_lut(dataset.pixel_array, dataset), dtype=float)
    if "WindowCenter" in dataset:
        values = np.asarray(apply_voi_lut(values, dataset), dtype=float)
    order = np.argsort(values, axis=None)
    grey = rgb[..., 0].ravel()[order].astype(int)
    assert np.all(np.diff(grey) >= 0)  # monotonic in the file's own values
    assert (rgb[..., 0] == rgb[..., 2]).all() and grey[0] == 0 and grey[-1] == 255


def test_a_multi_frame_file_gives_each_frame():
    content = _shipped("SC_rgb_rle_2frame.dcm")
    dataset = dicom.read(content)
    assert dicom.frame_count(dataset) == 2
    first, second = (dicom.frame_rgb(dataset, frame) for frame in (0, 1))
    assert not np.array_equal(first, second)
    assert np.array_equal(decode_sizes(content, [(100, 100)], NEAREST, frame=1)[0], second)
    with pytest.raises(ImageRejected, match="corrupt: frame 2 asked of a file with 2"):
        decode_sizes(content, [(100, 100)], NEAREST, frame=2)


def _with(content: bytes, change) -> bytes:
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(content))
    change(dataset)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda good: good[: len(good) // 2], "corrupt"),
        (lambda good: good[:200], "corrupt"),
        (lambda good: _with(good, lambda ds: delattr(ds, "PixelData")), "no_pixel_data"),
        # A JPEG's fragments declared MPEG-2 video, which no installed plugin decodes.
        (
            lambda good: _with(
                to_dicom(np.full((40, 50, 3), 120, np.uint8), "jpeg_baseline", "x"),
                lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2.4.100"),
            ),
            "unsupported_transfer_syntax",
        ),
        (lambda good: _with(good, lambda ds: setattr(ds, "Rows", 9000) or setattr(ds, "Columns", 9000)), "too_large"),
        (lambda good: _with(good, lambda ds: setattr(ds, "Rows", 7)), "corrupt"),
    ],
)
def test_hostile_dicom_gets_a_reason(make, reason):
    good = to_dicom(np.full((40, 50, 3), 120, np.uint8), "explicit_little", "x")
    with pytest.raises(ImageRejected) as rejected:
        decode_image(make(good), 32, 32, DecodeOptions(max_pixels=1_000_000))
    assert rejected.value.reason == reason, rejected.value.detail


def test_only_the_allowed_attributes_are_copied():
    content = to_dicom(np.full((40, 50, 3), 120, np.uint8), "rle", "ISIC_1")
    found = dicom.identity(dicom.read(content))
    assert set(found.attributes) == {
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "Modality",
        "BodyPartExamined",
        "PatientAge",
        "PatientSex",
    }
    assert found.attributes["PatientAge"] == "45" and found.attributes["Modality"] == "XC"
    text = repr(found)
    assert all(value not in text for value in FAKE_PATIENT.values())
