"""A HAM10000-shaped archive with one case of every way an archive goes wrong, for the ingest tests."""

import csv
import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def add_rows(archive: Path, rows: list[dict]) -> None:
    with open(archive / "HAM10000_metadata.csv", "a", newline="") as handle:
        columns = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
        writer = csv.DictWriter(handle, fieldnames=columns)
        for row in rows:
            writer.writerow({"dx_type": "histo", "age": "50", "sex": "male", "localization": "back", **row})


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header says width x height: a decompression bomb's calling card."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# File name -> (bytes maker, dx or None for no metadata row); all of these must be written.
GOOD_ODDITIES = {
    "ISIC_9100001": lambda rgb: encoded(rgb.convert("CMYK"), "JPEG"),
    "ISIC_9100002": lambda rgb: encoded(rgb.convert("L"), "PNG"),
    "ISIC_9100003": lambda rgb: encoded(rgb.convert("P"), "PNG"),
    "ISIC_9100004": lambda rgb: encoded(rgb.convert("RGBA"), "PNG"),
    "ISIC_9100005": lambda rgb: encoded(Image.new("I;16", rgb.size, 40000), "PNG"),
    "ISIC_9100006": lambda rgb: encoded(rgb, "JPEG", exif=_rotated()),
}


def _rotated():
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


def make_messy_archive(source: str, archive: Path) -> Path:
    """A copy of the archive at `source` in `archive`, plus one case of every way an archive
    goes wrong."""
    shutil.copytree(source, archive)
    images = archive / "HAM10000_images_part_1"
    good = next(images.glob("*.jpg")).read_bytes()
    png = io.BytesIO()
    Image.fromarray(np.full((450, 600, 3), 90, np.uint8)).save(png, format="PNG")
    (images / "ISIC_9000001.jpg").write_bytes(png.getvalue())  # a PNG named .jpg: fine
    (images / "ISIC_9000002.jpg").write_bytes(good[: len(good) // 3])  # truncated
    (images / "ISIC_9000003.jpg").write_bytes(b"")  # zero bytes
    (images / "ISIC_9000004.jpg").write_text("not a picture")  # not an image
    (images / "ISIC_9000005.jpg").write_bytes(good)  # no metadata row
    (images / "ISIC_9000006.jpg").write_bytes(good)  # label outside HAM10000's seven
    (images / "ISIC_9000009 Läsion%20é.jpg").write_bytes(good)  # non-ASCII, space, literal %20: fine
    (images / "ISIC_9000010.png").write_bytes(png_claiming(20000, 20000))  # too_large
    rgb = Image.open(io.BytesIO(good)).convert("RGB")
    for image_id, make in GOOD_ODDITIES.items():
        (images / f"{image_id}.jpg").write_bytes(make(rgb))
    add_rows(
        archive,
        [
            {"lesion_id": "HAM_9000001", "image_id": "ISIC_9000001", "dx": "nv", "age": ""},
            {"lesion_id": "HAM_9000002", "image_id": "ISIC_9000002", "dx": "nv"},
            {"lesion_id": "HAM_9000003", "image_id": "ISIC_9000003", "dx": "mel"},
            {"lesion_id": "HAM_9000004", "image_id": "ISIC_9000004", "dx": "bkl"},
            {"lesion_id": "HAM_9000006", "image_id": "ISIC_9000006", "dx": "scc"},
            {"lesion_id": "HAM_9000007", "image_id": "ISIC_9000007", "dx": "nv"},  # no file
            {"lesion_id": "HAM_9000001", "image_id": "ISIC_9000001", "dx": "nv"},  # duplicate
            {"lesion_id": "HAM_9000008", "image_id": "ISIC_9000008", "dx": ""},  # bad row
            {"lesion_id": "HAM_9000009", "image_id": "ISIC_9000009 Läsion%20é", "dx": "bkl"},
            {"lesion_id": "HAM_9000010", "image_id": "ISIC_9000010", "dx": "nv"},
            *[{"lesion_id": f"HAM_{image_id}", "image_id": image_id, "dx": "mel"} for image_id in GOOD_ODDITIES],
        ],
    )
    with open(archive / "HAM10000_metadata.csv", "a") as handle:
        handle.write("HAM_9000011,ISIC_9000011\n")  # too few fields: bad_row
        handle.write("HAM_9000012,ISIC_9000012,nv,histo,50,male,back,surplus\n")  # too many: bad_row
    return archive
