"""The shared decoder on hostile bytes, property-based (Hypothesis): random bytes and real JPEG,
PNG, WebP and DICOM files with bytes flipped, cut, repeated or inserted. Every example ends in pixels of the
asked shape or an ImageRejected with a known reason: never another exception, never a hang.

A few hundred examples with a fixed seed here; bench/fuzz_decoder.sh runs many more
(DERMSPARK_FUZZ_EXAMPLES)."""

import io
import os
import signal

import numpy as np
import pytest
from dermspark.images import DecodeOptions, ImageRejected, decode_sizes
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

EXAMPLES = int(os.environ.get("DERMSPARK_FUZZ_EXAMPLES", "300"))
REASONS = {
    "unreadable",
    "not_an_image",
    "truncated",
    "too_large",
    "corrupt",
    "no_pixel_data",
    "unsupported_transfer_syntax",
}
SIZES = [(75, 100), (30, 30)]
# Small enough that a header mutated to a large size is refused, not decoded for seconds.
OPTIONS = DecodeOptions(max_pixels=4_000_000)
# One example that takes longer than this is a hang.
HANG_SECONDS = 10


def _seeds() -> dict[str, bytes]:
    """Real files to mutate: a photograph-like gradient as JPEG (baseline and progressive, with
    EXIF), PNG (RGB, palette, 16-bit grey), WebP, and DICOM (uncompressed, JPEG baseline, RLE,
    JPEG-LS, JPEG 2000; a 16-bit signed CT and a palette file that pydicom ships)."""
    from dermspark.dicom_archive import to_dicom
    from pydicom.data import get_testdata_file

    rng = np.random.default_rng(0)
    pixels = (np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3) + rng.integers(0, 30, (48, 64, 3))) % 256
    rgb = Image.fromarray(pixels.astype(np.uint8))
    found = {}
    for name, image, options in (
        ("jpeg", rgb, {"format": "JPEG", "quality": 80, "exif": Image.Exif()}),
        ("progressive", rgb, {"format": "JPEG", "progressive": True}),
        ("png", rgb, {"format": "PNG"}),
        ("palette", rgb.convert("P"), {"format": "PNG"}),
        ("grey16", Image.fromarray((pixels[..., 0] * 257).astype(np.uint16)), {"format": "PNG"}),
        ("webp", rgb, {"format": "WEBP"}),
    ):
        buffer = io.BytesIO()
        image.save(buffer, **options)
        found[name] = buffer.getvalue()
    for syntax in ("explicit_little", "jpeg_baseline", "rle", "jpeg_ls_lossless", "jpeg2000_lossless"):
        found[f"dicom_{syntax}"] = to_dicom(np.asarray(rgb), syntax, "fuzz")
    for name in ("CT_small.dcm", "examples_palette.dcm"):
        with open(get_testdata_file(name), "rb") as handle:
            found[name] = handle.read()
    return found


SEEDS = _seeds()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "header"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            data = data[:at]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 512))]
        elif kind == "header" and len(data) > 32:
            # The first bytes hold the format's sizes and flags: where decoders are most fragile.
            index = draw(st.integers(0, 31))
            data[index] = draw(st.integers(0, 255))
    return bytes(data)


def _decode_or_reason(content: bytes) -> None:
    def hang(*_):
        raise TimeoutError(f"decoding took over {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(HANG_SECONDS)
    try:
        arrays = decode_sizes(content, SIZES, OPTIONS)
    except ImageRejected as rejected:
        assert rejected.reason in REASONS, rejected.reason
        return
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert [array.shape for array in arrays] == [(75, 100, 3), (30, 30, 3)]
    assert all(array.dtype == np.uint8 for array in arrays)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@seed(20261205)
@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_end_in_pixels_or_a_reason(content):
    _decode_or_reason(content)


@seed(20261205)
@FUZZ
@given(mutated())
def test_mutated_real_files_end_in_pixels_or_a_reason(content):
    _decode_or_reason(content)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_the_unmutated_seeds_decode(name):
    assert [array.shape for array in decode_sizes(SEEDS[name], SIZES, OPTIONS)] == [(75, 100, 3), (30, 30, 3)]
