"""Decode and resize: the one implementation that ingest, scoring and serving share.

Training and scoring must see identical pixels, so nothing else in dermspark opens an image, and
the choices that change pixels (filter, aspect) travel from the dataset into every model bundle.
"""

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dermspark import DermsparkError, dicom
from dermspark.settings.common import COLOR_CONSTANCY

# Pillow's own default; scans of a lesion are far below it, a decompression bomb is far above.
DEFAULT_MAX_PIXELS = 89_478_485

RESAMPLING = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
# stretch: the whole image squeezed to the target shape, as the papers did;
# crop: the largest centred region of the target's aspect ratio, then resized.
ASPECTS = ("stretch", "crop")


class ImageRejected(Exception):
    """The bytes are not a usable image; `reason` is one of the reject reasons ingest reports."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodeOptions:
    resample: str = "lanczos"
    aspect: str = "stretch"
    max_pixels: int = DEFAULT_MAX_PIXELS
    color_constancy: str = "none"
    color_constancy_power: float = 6.0  # shades_of_gray's p

    def __post_init__(self):
        if self.resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {', '.join(RESAMPLING)}, not {self.resample!r}")
        if self.aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {', '.join(ASPECTS)}, not {self.aspect!r}")
        if self.color_constancy not in COLOR_CONSTANCY:
            raise ValueError(
                f"color constancy must be one of {', '.join(COLOR_CONSTANCY)}, not {self.color_constancy!r}"
            )
        if not 1 <= self.color_constancy_power <= 64:
            raise ValueError(f"the colour constancy power must be within 1 to 64, got {self.color_constancy_power}")

    def recorded(self) -> dict:
        """What datasets and bundles record: every choice that changes pixels."""
        return {
            "resample": self.resample,
            "aspect": self.aspect,
            "color_constancy": self.color_constancy,
            **(
                {"color_constancy_power": self.color_constancy_power}
                if self.color_constancy == "shades_of_gray"
                else {}
            ),
        }

    @classmethod
    def from_record(cls, record: dict) -> "DecodeOptions":
        """The options a dataset or bundle recorded; those from before colour constancy had none."""
        return cls(
            resample=record.get("resample", "lanczos"),
            aspect=record.get("aspect", "stretch"),
            color_constancy=record.get("color_constancy", "none"),
            color_constancy_power=float(record.get("color_constancy_power", 6.0)),
        )


def parse_size(text: str) -> tuple[int, int]:
    """'75x100' -> (75, 100): height x width, the way the papers give their input shapes."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise DermsparkError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 75x100") from None
    if height <= 0 or width <= 0:
        raise DermsparkError(f"size {text!r} must be positive")
    return height, width


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = [parse_size(part.strip()) for part in text.split(",") if part.strip()]
    if not sizes:
        raise DermsparkError("at least one size is needed, e.g. 75x100")
    return list(dict.fromkeys(sizes))


def _dicom_rgb(content: bytes, options: DecodeOptions, too_large: str, frame: int) -> Image.Image:
    """A DICOM file's frame (dicom.py), its size checked on the header before it is decoded."""
    try:
        dataset = dicom.read(content)
        pixels = dicom.pixel_count(dataset)
        if pixels > options.max_pixels:
            raise ImageRejected("too_large", f"{dataset.Columns}x{dataset.Rows} pixels, {too_large}")
        return Image.fromarray(dicom.frame_rgb(dataset, frame), "RGB")
    except dicom.DicomRejected as rejected:
        raise ImageRejected(rejected.reason, rejected.detail) from None


def _open_rgb(
    content: bytes, size: tuple[int, int], options: DecodeOptions, loaded: dict, frame: int = 0
) -> Image.Image:
    """The RGB image to resize to `size`. `loaded` holds the images already decoded from these
    bytes, by decoded size, so sizes sharing a JPEG draft scale share one decode. A DICOM file
    (told by its preamble) gives its frame `frame`."""
    if not content:
        raise ImageRejected("unreadable", "empty file")
    too_large = f"over the limit of {options.max_pixels:,} pixels (--max-pixels)"
    if dicom.is_dicom(content):
        if "dicom" not in loaded:
            loaded["dicom"] = _dicom_rgb(content, options, too_large, frame)
        return loaded["dicom"]
    with warnings.catch_warnings():
        # The limit is --max-pixels, checked below on the header before any pixel is decoded:
        # Pillow's own check (a warning above its default, an error at twice it) would refuse
        # a higher --max-pixels and name its own limit. It stays armed as a backstop.
        Image.MAX_IMAGE_PIXELS = max(options.max_pixels, DEFAULT_MAX_PIXELS)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(content))
            if image.width * image.height > options.max_pixels:
                raise ImageRejected("too_large", f"{image.width}x{image.height} pixels, {too_large}")
            # JPEG draft mode decodes at 1/2..1/8 scale, never below the target: a target at most
            # half the source costs a fraction of a full decode. The scale depends on the target
            # alone, so an image decoded for one size has the same pixels whatever other sizes
            # the same run writes, and scoring, which decodes for one size, sees those pixels.
            if image.format == "JPEG":
                height, width = size
                if image.getexif().get(0x0112) in (5, 6, 7, 8):  # stored turned 90 degrees
                    height, width = width, height
                image.draft("RGB", (width, height))
            if image.size not in loaded:
                image.load()
                # In place: without an orientation to apply, exif_transpose and a convert to the
                # mode the image already has each return a copy (docs/benchmarks.md, the code's figures).
                ImageOps.exif_transpose(image, in_place=True)
                loaded[image.size] = to_rgb(image)
            return loaded[image.size]
        except ImageRejected:
            raise
        except UnidentifiedImageError:
            raise ImageRejected("not_an_image", "format not recognised") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected("too_large", too_large) from None
        except Exception as error:  # noqa: BLE001  any decoder failure on untrusted bytes
            message = str(error) or type(error).__name__
            truncated = "truncated" in message.lower() or "broken data" in message.lower()
            raise ImageRejected("truncated" if truncated else "unreadable", message) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode. Pillow's own convert clips wider integers to 255 (a 16-bit scan
    turned white) and truncates floats, so those are scaled by their value range first
    (`to_8bit`); the rest (L, LA, P, PA, 1, CMYK, RGBA, YCbCr) Pillow converts exactly, alpha
    dropped. A mode it cannot convert raises, and the caller rejects the file."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return Image.fromarray(to_8bit(np.asarray(image), image.mode)).convert("RGB")
    return image.convert("RGB")


def to_8bit(values: np.ndarray, mode: str) -> np.ndarray:
    """One channel of 16-bit, 32-bit integer or float pixels as uint8: 16-bit by its type's range
    (65535 is white); 32-bit integers and floats by the range their values use (0..255 as they
    are, 0..65535 as 16-bit, floats 0..1 as fractions of white), else stretched min to max."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16"):
        scaled = values / 257.0
    elif low >= 0 and high <= (1.0 if mode == "F" else 255.0):
        scaled = values * (255.0 if mode == "F" else 1.0)
    elif low >= 0 and high <= 65535:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _resize(image: Image.Image, height: int, width: int, options: DecodeOptions) -> np.ndarray:
    method = RESAMPLING[options.resample]
    if options.aspect == "crop":
        resized = ImageOps.fit(image, (width, height), method=method)
    else:
        resized = image.resize((width, height), resample=method)
    pixels = np.asarray(resized, dtype=np.uint8)
    if options.color_constancy == "none":
        return pixels
    power = 1.0 if options.color_constancy == "gray_world" else options.color_constancy_power
    return color_constancy(pixels, power)


def color_constancy(pixels: np.ndarray, power: float) -> np.ndarray:
    """Each channel scaled so that its Minkowski p-mean is the mean of the three (shades of
    gray; p = 1 is gray world), on the resized image, so every size of one decode is corrected
    by its own pixels alike in ingest, scoring and serving. Cast's strength is per image, so
    no setting is fitted on data."""
    values = pixels.astype(np.float32) / 255.0
    illuminant = np.power(np.mean(np.power(values, power), axis=(0, 1)), 1.0 / power)
    illuminant = np.maximum(illuminant, 1e-3)  # an all-black channel divides by nothing
    corrected = values * (illuminant.mean() / illuminant)
    return np.clip(np.rint(corrected * 255.0), 0, 255).astype(np.uint8)


def decode_sizes(
    content: bytes, sizes: list[tuple[int, int]], options: DecodeOptions = DecodeOptions(), frame: int = 0
) -> list[np.ndarray]:
    """Decode once per JPEG draft scale, resize to every size: uint8 RGB arrays of shape
    (height, width, 3), each equal to what decode_image gives for its size alone.

    The format is recognised from the content, never the file name; EXIF orientation is applied;
    every mode (L, P, RGBA, CMYK, I;16 ...) is converted to RGB. DICOM files give their frame
    `frame` by the file's own rules (dicom.py)."""
    loaded: dict = {}
    return [_resize(_open_rgb(content, size, options, loaded, frame), *size, options) for size in sizes]


def decode_image(content: bytes, height: int, width: int, options: DecodeOptions = DecodeOptions()) -> np.ndarray:
    return decode_sizes(content, [(height, width)], options)[0]
