import io

import numpy as np
import pytest
from dermspark.images import ImageRejected, decode_image, parse_size
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
        decode_image(encode(half_red_half_blue(600, 450), "PNG"), 75, 100, max_pixels=1000)
    assert caught.value.reason == "too_large"


def test_parse_size_is_height_by_width():
    assert parse_size("75x100") == (75, 100)
    with pytest.raises(ValueError):
        parse_size("75")
