"""Decode and resize: the one implementation that ingest, scoring and serving share.

Training and scoring must see identical pixels, so nothing else in dermspark opens an image.
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow's own default; scans of a lesion are far below it, a decompression bomb is far above.
DEFAULT_MAX_PIXELS = 89_478_485


class ImageRejected(Exception):
    """The bytes are not a usable image; `reason` is one of the reject reasons ingest reports."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_size(text: str) -> tuple[int, int]:
    """'75x100' -> (75, 100): height x width, the way the papers give their input shapes."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 75x100") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return height, width


def decode_image(
    content: bytes,
    height: int,
    width: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    resample: int = Image.LANCZOS,
) -> np.ndarray:
    """Bytes of any format Pillow reads -> uint8 array of shape (height, width, 3), RGB.

    The format is recognised from the content, never the file name; EXIF orientation is applied;
    every mode is converted to RGB; the image is stretched to the target size as the papers did.
    """
    if not content:
        raise ImageRejected("unreadable", "empty file")
    with warnings.catch_warnings():
        # Pillow warns before it raises at twice the limit; we reject at the limit itself.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(content))
            if image.width * image.height > max_pixels:
                raise ImageRejected("too_large", f"{image.width}x{image.height} pixels")
            # JPEG draft mode decodes at 1/2..1/8 scale directly when the target is that small.
            if image.format == "JPEG":
                image.draft("RGB", (width * 2, height * 2))
            image.load()
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGB").resize((width, height), resample=resample)
        except ImageRejected:
            raise
        except UnidentifiedImageError:
            raise ImageRejected("not_an_image", "format not recognised") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageRejected("too_large", str(error)) from None
        except Exception as error:  # noqa: BLE001  any decoder failure on untrusted bytes
            message = str(error) or type(error).__name__
            truncated = "truncated" in message.lower() or "broken data" in message.lower()
            raise ImageRejected("truncated" if truncated else "unreadable", message) from None
    return np.asarray(image, dtype=np.uint8)
