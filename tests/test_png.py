"""dermspark.png: the PNG ingest stores must be one that Petastorm's codec, Pillow and OpenCV read
back to exactly the array that went in."""

import glob
import io
import os

import numpy as np
import pytest
from dermspark.images import decode_image
from dermspark.png import SIGNATURE, encode_png
from dermspark.schema import image_encoder, make_schema
from PIL import Image

SHAPES = [(1, 1), (1, 7), (7, 1), (75, 100), (299, 299), (33, 250)]


def _petastorm_decode(data: bytes, shape) -> np.ndarray:
    field = make_schema(*shape).fields["image"]
    return field.codec.decode(field, data)


@pytest.mark.parametrize("shape", SHAPES)
def test_random_pixels_come_back_exactly(shape):
    """Random bytes exercise the up filter's wrap-around at 0 and 255 in every channel."""
    array = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    data = encode_png(array)
    assert data.startswith(SIGNATURE)
    assert np.array_equal(_petastorm_decode(data, shape), array)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert np.array_equal(np.asarray(image), array)


def test_real_images_come_back_exactly_and_no_larger_than_opencvs(real_data):
    files = sorted(glob.glob(os.path.join(real_data, "ham10000-200x150", "images", "*.jpg")))[:40]
    ours = theirs = 0
    for path in files:
        with open(path, "rb") as handle:
            array = decode_image(handle.read(), 75, 100)
        field = make_schema(75, 100).fields["image"]
        data = encode_png(array)
        assert np.array_equal(_petastorm_decode(data, (75, 100)), array)
        ours += len(data)
        theirs += len(field.codec.encode(field, array))
    assert ours <= theirs


def test_raw_codec_keeps_its_own_encoder_and_png_uses_this_one():
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert image_encoder(make_schema(2, 3, "png")) is encode_png
    raw = make_schema(2, 3, "raw")
    field = raw.fields["image"]
    assert np.array_equal(field.codec.decode(field, image_encoder(raw)(array)), array)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 3), np.float32),
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
    ],
)
def test_anything_but_rgb_uint8_is_refused(bad):
    with pytest.raises(ValueError, match="uint8"):
        encode_png(bad)
