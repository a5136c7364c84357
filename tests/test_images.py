import io

import numpy as np
import pytest
from dermspark import DermsparkError
from dermspark.images import DecodeOptions, ImageRejected, decode_image, decode_sizes, parse_size
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def half_red_half_blue(width=200, height=150) -> Image.Image:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(array)


def test_output_is_height_by_width_rgb_uint8():
    out = decode_image(encode(half_red_half_blue(), "JPEG"), 75, 100)
    assert out.shape == (75, 100, 3) and out.dtype == np.uint8
    assert out[:, :40, 0].mean() > 200 and out[:, 60:, 2].mean() > 200


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16"])
def test_every_mode_becomes_rgb(mode):
    image = half_red_half_blue().convert("RGB")
    image = image.convert(mode) if mode != "I;16" else Image.new("I;16", (200, 150), 300)
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    assert decode_image(encode(image, fmt), 30, 40).shape == (30, 40, 3)


def _gradient8() -> np.ndarray:
    """An 8-bit grey ramp with every value, 150x200."""
    return np.tile(np.linspace(0, 255, 200).round().astype(np.uint8), (150, 1))


@pytest.mark.parametrize(
    "fmt, make",
    [
        # 16-bit PNG (Pillow opens it as I;16 or I), the 8-bit ramp times 257: 65535 is white.
        ("PNG", lambda ramp: Image.fromarray(ramp.astype(np.uint16) * 257)),
        ("TIFF", lambda ramp: Image.fromarray(ramp.astype(np.uint16) * 257)),
        # 32-bit integers holding 0..255, and floats holding fractions of white.
        ("TIFF", lambda ramp: Image.fromarray(ramp.astype(np.int32), mode="I")),
        ("TIFF", lambda ramp: Image.fromarray(ramp.astype(np.float32) / 255.0, mode="F")),
    ],
)
def test_wide_pixels_decode_as_their_8bit_versions(fmt, make):
    """Pillow's own convert would clip a 16-bit image to white (every value above 255)."""
    ramp = _gradient8()
    expected = decode_image(encode(Image.fromarray(ramp), "PNG"), 150, 200, DecodeOptions(resample="nearest"))
    found = decode_image(encode(make(ramp), fmt), 150, 200, DecodeOptions(resample="nearest"))
    assert np.abs(found.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("mode", ["LA", "P", "1", "CMYK", "RGBA", "YCbCr"])
def test_other_modes_decode_as_pillow_converts_them(mode):
    source = half_red_half_blue()
    image = source.convert(mode)
    fmt = {"CMYK": "TIFF", "YCbCr": "JPEG"}.get(mode, "PNG")
    found = decode_image(encode(image, fmt), 150, 200, DecodeOptions(resample="nearest"))
    expected = np.asarray(Image.open(io.BytesIO(encode(image, fmt))).convert("RGB"))
    assert np.abs(found.astype(int) - expected.astype(int)).max() <= 1


def test_format_comes_from_content_not_name():
    # A PNG's bytes decode whatever the file was called; nothing here looks at a name.
    png = encode(half_red_half_blue(), "PNG")
    assert decode_image(png, 15, 20)[:, :5, 0].mean() > 250


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    content = encode(half_red_half_blue(), "JPEG", exif=exif)
    out = decode_image(content, 100, 75)
    # Red (left half) ends up on top once rotated.
    assert out[:40, :, 0].mean() > 200 and out[60:, :, 2].mean() > 200


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "unreadable"),
        (b"lesion_id,image_id,dx\n", "not_an_image"),
        (encode(half_red_half_blue(600, 450), "JPEG")[:3000], "truncated"),
        (b"\xff\xd8\xff\xe0 cut inside a header", "truncated"),
        (encode(half_red_half_blue(), "PNG")[:60], "truncated"),
    ],
)
def test_bad_content_is_rejected_with_a_reason(content, reason):
    with pytest.raises(ImageRejected) as caught:
        decode_image(content, 75, 100)
    assert caught.value.reason == reason


def test_decompression_bomb_limit():
    with pytest.raises(ImageRejected) as caught:
        decode_image(encode(half_red_half_blue(600, 450), "PNG"), 75, 100, DecodeOptions(max_pixels=1000))
    assert caught.value.reason == "too_large"
    assert caught.value.detail == "600x450 pixels, over the limit of 1,000 pixels (--max-pixels)"


def test_the_pixel_limit_is_the_settings_not_pillows():
    """A header claiming more than twice Pillow's own limit: refused at --max-pixels with its
    value; allowed past Pillow's limit when --max-pixels is higher (then found to be no image)."""
    from messy import png_claiming

    with pytest.raises(ImageRejected) as caught:
        decode_image(png_claiming(20000, 20000), 75, 100)
    assert (caught.value.reason, caught.value.detail) == (
        "too_large",
        "over the limit of 89,478,485 pixels (--max-pixels)",
    )
    with pytest.raises(ImageRejected) as caught:
        decode_image(png_claiming(20000, 20000), 75, 100, DecodeOptions(max_pixels=500_000_000))
    assert caught.value.reason != "too_large"


def test_every_size_from_one_decode_matches_decoding_each():
    content = encode(half_red_half_blue(600, 450), "JPEG")
    sizes = [(75, 100), (299, 299)]
    together = decode_sizes(content, sizes)
    assert [array.shape for array in together] == [(75, 100, 3), (299, 299, 3)]
    # 75x100 is decoded at JPEG draft scale 1/4 and 299x299 at full scale; each must equal what
    # scoring, which decodes for one size, gets, whichever sizes ingest wrote together.
    for (height, width), array in zip(sizes, together, strict=True):
        assert np.array_equal(array, decode_image(content, height, width))


def test_crop_keeps_the_centre_and_stretch_keeps_everything():
    # A wide image: left third red, centre third green, right third blue.
    array = np.zeros((100, 300, 3), dtype=np.uint8)
    array[:, :100, 0] = array[:, 100:200, 1] = array[:, 200:, 2] = 255
    content = encode(Image.fromarray(array), "PNG")
    cropped = decode_image(content, 50, 50, DecodeOptions(aspect="crop"))
    stretched = decode_image(content, 50, 50, DecodeOptions(aspect="stretch"))
    assert cropped[:, :, 1].mean() > 250  # only the green centre is left
    assert stretched[:, :10, 0].mean() > 200 and stretched[:, -10:, 2].mean() > 200


def test_unknown_filter_is_refused():
    with pytest.raises(ValueError, match="lanczos"):
        DecodeOptions(resample="sharpest")


def test_parse_size_is_height_by_width():
    assert parse_size("75x100") == (75, 100)
    with pytest.raises(DermsparkError, match="HEIGHTxWIDTH"):
        parse_size("75")
