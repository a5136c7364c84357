"""PNG encoding for ingest: the same lossless PNG that Petastorm's codec reads, written faster.

Petastorm's `CompressedImageCodec("png")` encodes through OpenCV's libpng, which tries every row
filter and deflates with zlib: at 75x100 that was the largest single cost of ingest (about half
a worker's time under py-spy). Here every row gets PNG's "up" filter (one numpy subtraction)
and is deflated by ISA-L, Intel's deflate, at its fastest level: 284 -> 111 us per 75x100 image
and 3.35 -> 0.77 ms at 299x299, for files 4% and 19% smaller, and no slower to decode (timed in
one process on the real 200x150 set). The result is a standard 8-bit RGB PNG: the dataset's
schema keeps Petastorm's codec, so every Petastorm reader decodes it as before, to the same
pixels.
"""

import struct
import zlib

import numpy as np
from isal import isal_zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP = 2  # PNG filter type 2: each byte minus the byte above it, modulo 256.


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray) -> bytes:
    """An (height, width, 3) uint8 RGB array as PNG bytes."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(
            f"encode_png takes a non-empty (height, width, 3) uint8 array, not {image.dtype} of shape {image.shape}"
        )
    height, width = image.shape[:2]
    pixels = image.reshape(height, width * 3)
    rows = np.empty((height, width * 3 + 1), np.uint8)
    rows[:, 0] = _UP
    rows[0, 1:] = pixels[0]  # the row above the first is zeros by PNG's rule
    np.subtract(pixels[1:], pixels[:-1], out=rows[1:, 1:])  # uint8 wraps modulo 256, as PNG's does
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no interlace
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", isal_zlib.compress(rows, 1)) + _chunk(b"IEND", b"")
