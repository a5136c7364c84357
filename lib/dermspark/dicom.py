"""DICOM Part 10 files as the shared decoder reads them (images.py): told apart by the `DICM`
preamble, never the extension; one frame's pixels as 8-bit RGB by the file's own rules; the few
attributes dermspark may copy (ALLOWED), and nothing else of the header.

Pixel data go through pydicom and the decoder plugins pip installs beside it (pylibjpeg with its
JPEG, JPEG 2000 and RLE plugins, pyjpegls for JPEG-LS), so every transfer syntax those decode is
read: explicit and implicit VR, little and big endian, uncompressed RGB, YBR_FULL and
YBR_FULL_422, palette colour, JPEG baseline and extended, JPEG-LS, JPEG 2000, RLE.
Monochrome images (signed or not, any bit depth) get the modality LUT (rescale), then the file's
VOI LUT or window, or else their own range, scaled to 8 bits; MONOCHROME1 is inverted.
"""

import io
from dataclasses import dataclass

import numpy as np

PREAMBLE = b"DICM"
PREAMBLE_AT = 128
# What dermspark may copy out of a header: identity to join results back, and the clinical
# context the reports break figures down by. Never names, ids, dates, addresses or free text.
ALLOWED = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "BodyPartExamined",
    "PatientAge",
    "PatientSex",
)


class DicomRejected(Exception):
    """A DICOM file whose pixels cannot be had; reason is a reject reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Identity:
    """A frame's place in the hospital's records: UIDs and the allowed attributes."""

    attributes: dict
    frame: int
    frames: int


def is_dicom(content: bytes) -> bool:
    return len(content) >= PREAMBLE_AT + 4 and content[PREAMBLE_AT : PREAMBLE_AT + 4] == PREAMBLE


def read(content: bytes):
    """The parsed header and pixel data element (not yet decoded)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(io.BytesIO(content))
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OverflowError, MemoryError) as error:
        raise DicomRejected("corrupt", f"header cannot be read: {_words(error)}") from None
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds on hostile bytes
        raise DicomRejected("corrupt", f"header cannot be read: {_words(error)}") from None
    if len(dataset) == 0:
        raise DicomRejected("corrupt", "nothing after the file meta information: the file is cut short")
    if "PixelData" not in dataset and "FloatPixelData" not in dataset and "DoubleFloatPixelData" not in dataset:
        raise DicomRejected("no_pixel_data", f"a {_kind(dataset)} without pixel data")
    return dataset


def identity(dataset, frame: int = 0) -> Identity:
    attributes: dict = {}
    for name in ALLOWED:
        value = dataset.get(name)
        if value not in (None, ""):
            attributes[name] = _age_years(str(value)) if name == "PatientAge" else str(value)
    region = dataset.get("AnatomicRegionSequence")
    if region:
        attributes["AnatomicRegion"] = str(region[0].get("CodeMeaning", "")) or None
    return Identity(attributes, frame, frame_count(dataset))


def diagnosis(dataset) -> str | None:
    """The diagnosis a header carries, as a code labels.diagnosis_code knows (UNRECOGNISED for
    other text, which is never copied); None when it carries none. Read from Admitting
    Diagnoses, the Patient Study module's place for it: the code sequence's meaning, then the
    description."""
    from dermspark.labels import diagnosis_code

    codes = dataset.get("AdmittingDiagnosesCodeSequence")
    for item in codes or ():
        found = diagnosis_code(item.get("CodeMeaning")) or diagnosis_code(item.get("CodeValue"))
        if found:
            return found
    return diagnosis_code(dataset.get("AdmittingDiagnosesDescription"))


def allowed_attributes(content: bytes) -> dict:
    """The allow-listed attributes of a DICOM file's header, read without its pixels; {} when
    the header cannot be read (the decoder then gives the reason)."""
    import pydicom

    try:
        return identity(pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True)).attributes
    except Exception:  # noqa: BLE001 - a hostile header: the decode names what is wrong
        return {}


def frames_of(content: bytes) -> int:
    """How many frames a file holds: a DICOM file's NumberOfFrames, 1 for anything else (and for
    a header that cannot be read, whose one row then carries the reason)."""
    if not is_dicom(content):
        return 1
    import pydicom

    try:
        return frame_count(pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True))
    except Exception:  # noqa: BLE001 - hostile header: one row, the decode's reason
        return 1


def read_header(path: str):
    """A local DICOM file's header alone (its first bytes read to tell, the pixels never);
    None for any other file."""
    import pydicom

    with open(path, "rb") as handle:
        if not is_dicom(handle.read(PREAMBLE_AT + 4)):
            return None
    return pydicom.dcmread(path, stop_before_pixels=True)


def header_frames(path: str) -> int:
    """frames_of for a local file, reading its header only."""
    try:
        header = read_header(path)
        return 1 if header is None else frame_count(header)
    except Exception:  # noqa: BLE001 - unreadable or hostile: one row, whose decode says why
        return 1


def frame_count(dataset) -> int:
    try:
        return max(1, int(dataset.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError) as error:
        raise DicomRejected("corrupt", f"number of frames: {_words(error)}") from None


def pixel_count(dataset) -> int:
    """Rows x columns from the header, before any pixel is decoded (--max-pixels)."""
    try:
        return int(dataset.get("Rows", 0) or 0) * int(dataset.get("Columns", 0) or 0)
    except (TypeError, ValueError) as error:
        raise DicomRejected("corrupt", f"image size: {_words(error)}") from None


def frame_rgb(dataset, frame: int = 0) -> np.ndarray:
    """One frame as uint8 RGB (height, width, 3)."""
    try:
        return _frame_rgb(dataset, frame)
    except DicomRejected:
        raise
    except Exception as error:  # noqa: BLE001 - attributes of any value on hostile files
        raise DicomRejected("corrupt", f"pixels cannot be made RGB: {_words(error)}") from None


def _frame_rgb(dataset, frame: int) -> np.ndarray:
    from pydicom.pixels import pixel_array

    frames = frame_count(dataset)
    if not 0 <= frame < frames:
        raise DicomRejected("corrupt", f"frame {frame} asked of a file with {frames}")
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    try:
        pixels = pixel_array(dataset, index=frame if frames > 1 else None)
    except NotImplementedError as error:
        raise DicomRejected("unsupported_transfer_syntax", f"{_syntax_name(syntax)}: {_words(error)}") from None
    except RuntimeError as error:
        reason = (
            "unsupported_transfer_syntax"
            if "plugin" in str(error).lower() or "decoder" in str(error).lower()
            else "corrupt"
        )
        raise DicomRejected(reason, f"{_syntax_name(syntax)}: {_words(error)}") from None
    except Exception as error:  # noqa: BLE001 - pixel data of any length and content
        raise DicomRejected(
            "corrupt", f"pixel data cannot be decoded ({_syntax_name(syntax)}): {_words(error)}"
        ) from None
    return _to_rgb(dataset, pixels)


def _to_rgb(dataset, pixels: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        return _scale(apply_color_lut(pixels, dataset), _lut_bits(dataset))
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        # pydicom gives YBR as RGB already (as_rgb); any depth above 8 bits is scaled down.
        return _scale(pixels, int(dataset.get("BitsStored", 8) or 8))
    if pixels.ndim != 2:
        raise DicomRejected("corrupt", f"pixel array of shape {pixels.shape} is not one image")
    values = apply_modality_lut(pixels, dataset)
    windowed = "WindowCenter" in dataset or "VOILUTSequence" in dataset
    if windowed:
        values = apply_voi_lut(values, dataset)
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    grey = np.zeros(values.shape) if high <= low else (values - low) / (high - low)
    if photometric == "MONOCHROME1":
        grey = 1.0 - grey
    grey = np.rint(grey * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _scale(values: np.ndarray, bits: int) -> np.ndarray:
    if values.dtype == np.uint8 or bits <= 8:
        return np.clip(values, 0, 255).astype(np.uint8)
    return np.clip(np.rint(values.astype(np.float64) * 255 / (2**bits - 1)), 0, 255).astype(np.uint8)


def _lut_bits(dataset) -> int:
    descriptor = dataset.get("RedPaletteColorLookupTableDescriptor")
    return int(descriptor[2]) if descriptor else 8


def _age_years(value: str) -> str | None:
    """DICOM's age string (045Y, 018M, 010W, 003D) in whole years; other spellings dropped."""
    value = value.strip().upper()
    if len(value) == 4 and value[:3].isdigit() and value[3] in "YMWD":
        return str(int(value[:3]) // {"Y": 1, "M": 12, "W": 52, "D": 365}[value[3]])
    return None


def _kind(dataset) -> str:
    return getattr(dataset.get("SOPClassUID"), "name", None) or "DICOM object"


def _syntax_name(syntax) -> str:
    return getattr(syntax, "name", None) or str(syntax or "no transfer syntax")


def _words(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200] or type(error).__name__
