"""A synthetic archive in the official HAM10000 layout, for the demo and the tests.

Same metadata columns, the real class mix and several images per lesion, 600x450 JPEGs split
over HAM10000_images_part_1/ and part_2/. Each class is drawn with its own colour and shape,
so a small CNN can learn it in a few epochs: the point is to exercise the pipeline, not to
stand in for real dermatoscopy.
"""

import csv
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dermspark.labels import HAM10000_CLASSES

# Real HAM10000 counts (nv 6705, mel 1113, bkl 1099, bcc 514, akiec 327, vasc 142, df 115).
REAL_COUNTS = {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142}
# Lesion colour (RGB) and shape per class: distinct enough to be learnable at 75x100.
LOOKS = {
    "akiec": ((220, 60, 60), "blotch"),
    "bcc": ((245, 225, 235), "ring"),
    "bkl": ((200, 170, 90), "blotch"),
    "df": ((90, 50, 20), "ring"),
    "mel": ((30, 25, 50), "blotch"),
    "nv": ((130, 80, 40), "ellipse"),
    "vasc": ((140, 0, 90), "ellipse"),
}
IMAGES_PER_LESION = (1, 1, 1, 1, 1, 1, 2, 2, 3)  # about 1.4 images per lesion, as in HAM10000
LOCALIZATIONS = ("back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest")
DX_TYPES = ("histo", "follow_up", "consensus", "confocal")


@dataclass
class SyntheticArchive:
    path: str
    images: int
    lesions: int
    class_counts: dict


def _random_lesion(rng: np.random.Generator) -> dict:
    """One lesion's look, drawn once and shared by its images: skin tone, size, shape, place."""
    return {
        "skin": rng.uniform((190, 140, 120), (240, 190, 170)),
        "radius": rng.uniform(80, 140),
        "aspect": rng.uniform(0.6, 1.0),
        "dx_shift": rng.normal(0, 40),
        "dy_shift": rng.normal(0, 30),
    }


def _draw(rng: np.random.Generator, dx: str, lesion: dict, size=(600, 450)) -> Image.Image:
    width, height = size
    skin = np.array(lesion["skin"], dtype=np.float32)
    canvas = skin + rng.normal(0, 8, (height, width, 3))
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    base, shape = LOOKS[dx]
    colour = tuple(int(c + rng.normal(0, 10)) for c in base)
    cx = width / 2 + lesion["dx_shift"] + rng.normal(0, 15)
    cy = height / 2 + lesion["dy_shift"] + rng.normal(0, 15)
    rx, ry = lesion["radius"] * rng.uniform(0.9, 1.1), lesion["radius"] * lesion["aspect"]
    box = (cx - rx, cy - ry, cx + rx, cy + ry)
    if shape == "ring":
        draw.ellipse(box, outline=colour, width=int(rx / 3))
    elif shape == "blotch":
        for _ in range(6):
            ox, oy = rng.normal(0, rx / 3, 2)
            draw.ellipse((box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy), fill=colour)
    else:
        draw.ellipse(box, fill=colour)
    return image.filter(ImageFilter.GaussianBlur(2))


def _lesion_plan(total: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """(dx, number of images) per lesion, for about `total` images in the real class mix."""
    real_total = sum(REAL_COUNTS.values())
    plan = []
    for dx in HAM10000_CLASSES:
        # At least a few images per class, so every class can reach every split.
        wanted = max(6, round(total * REAL_COUNTS[dx] / real_total))
        while wanted > 0:
            count = min(wanted, int(rng.choice(IMAGES_PER_LESION)))
            plan.append((dx, count))
            wanted -= count
    rng.shuffle(plan)
    return plan


def make_synthetic_ham10000(path: str, images: int = 300, seed: int = 0) -> SyntheticArchive:
    if images < 7 * 6:
        raise ValueError(f"images must be at least 42 (6 per class), got {images}")
    rng = np.random.default_rng(seed)
    folders = [os.path.join(path, f"HAM10000_images_part_{part}") for part in (1, 2)]
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
    rows, counts = [], dict.fromkeys(HAM10000_CLASSES, 0)
    plan = _lesion_plan(images, rng)
    image_number = 24306  # the first real HAM10000 image id
    for lesion_number, (dx, count) in enumerate(plan):
        lesion = _random_lesion(rng)
        meta = {
            "lesion_id": f"HAM_{lesion_number:07d}",
            "dx": dx,
            "dx_type": str(rng.choice(DX_TYPES)),
            "age": "" if rng.random() < 0.01 else str(int(rng.integers(1, 18)) * 5),
            "sex": str(rng.choice(("male", "female"))),
            "localization": str(rng.choice(LOCALIZATIONS)),
        }
        for _ in range(count):
            image_id = f"ISIC_{image_number:07d}"
            image_number += 1
            folder = folders[0] if image_number % 2 else folders[1]
            _draw(rng, dx, lesion).save(os.path.join(folder, f"{image_id}.jpg"), quality=90)
            rows.append({"image_id": image_id, **meta})
            counts[dx] += 1
    with open(os.path.join(path, "HAM10000_metadata.csv"), "w", newline="") as handle:
        columns = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return SyntheticArchive(path=path, images=len(rows), lesions=len(plan), class_counts=counts)


def make_synthetic_external(
    path: str, images: int = 60, seed: int = 0, classes=("bkl", "mel", "nv"), cast=(1.0, 1.0, 1.0)
) -> SyntheticArchive:
    """Another "clinic": the labels_csv layout (labels.csv, images/), square 256x256 images of
    some classes only, one image per lesion and no lesion ids, each channel multiplied by
    `cast` (another camera's colour). ISIC 2017's export has this shape."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(path, "images")
    os.makedirs(folder, exist_ok=True)
    rows, counts = [], dict.fromkeys(classes, 0)
    for number in range(images):
        dx = classes[number % len(classes)]
        lesion = _random_lesion(rng)
        image = np.asarray(_draw(rng, dx, lesion).resize((256, 256)), dtype=np.float32) * np.asarray(cast)
        image_id = f"EXT_{number:07d}"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f"{image_id}.jpg"), quality=90
        )
        rows.append({"image_id": image_id, "lesion_id": image_id, "dx": dx.upper() if number % 5 == 0 else dx})
        counts[dx] += 1
    with open(os.path.join(path, "labels.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image_id", "lesion_id", "dx"])
        writer.writeheader()
        writer.writerows(rows)
    return SyntheticArchive(path=path, images=len(rows), lesions=len(rows), class_counts=counts)
