"""Images that are not dermoscopy, for the review flag's tests and its figures in the docs.

Built from what installed packages ship (matplotlib's and scikit-learn's sample photographs, an
MRI slice, elevation maps) and from what this module draws (text pages, charts, noise,
gradients), never downloaded. One folder per kind, so figures can be read per kind. The flag's
thresholds are never chosen on this set: it only measures them.
"""

import gzip
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

KINDS = ("photographs", "other_modalities", "documents", "charts", "noise", "gradients")
WORDS = (
    "patient",
    "report",
    "invoice",
    "total",
    "page",
    "date",
    "section",
    "results",
    "summary",
    "the",
    "of",
    "and",
    "clinic",
    "review",
    "signed",
    "table",
    "figure",
    "appendix",
    "consent",
    "form",
)


@dataclass
class OodSet:
    path: str
    counts: dict


def _sample(name: str) -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", name)


def _photographs() -> list[Image.Image]:
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(image) for image in load_sample_images().images]
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        photos.append(Image.open(_sample(name)).convert("RGB"))
    return photos


def _mri() -> np.ndarray:
    """matplotlib's MRI slice: 256x256 big-endian 16-bit."""
    with gzip.open(_sample("s1045.ima.gz")) as handle:
        return np.frombuffer(handle.read(), dtype=">u2").reshape(256, 256).astype(np.float64)


def _crop(rng, image: Image.Image, size=(450, 600)) -> Image.Image:
    """A random crop of a quarter to all of the image, at a random aspect, resized."""
    width, height = image.size
    scale, aspect = rng.uniform(0.25, 1.0), rng.uniform(0.6, 1.6)
    crop_w = int(min(width, max(16, np.sqrt(scale * width * height * aspect))))
    crop_h = int(min(height, max(16, np.sqrt(scale * width * height / aspect))))
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    return image.crop((left, top, left + crop_w, top + crop_h)).resize((size[1], size[0]))


def _grey_rgb(values: np.ndarray, low: float, high: float) -> Image.Image:
    scaled = np.clip((values - low) / max(high - low, 1e-9), 0, 1) * 255
    return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")


def _other_modality(rng) -> Image.Image:
    """The MRI slice windowed and cropped, or an elevation map drawn as a grey 'scan'."""
    if rng.random() < 0.7:
        slice_ = _mri()
        low, high = np.quantile(slice_, [rng.uniform(0, 0.3), rng.uniform(0.9, 1.0)])
        return _crop(rng, _grey_rgb(slice_, low, high))
    with np.load(_sample("jacksboro_fault_dem.npz")) as dem:
        elevation = dem["elevation"].astype(np.float64)
    return _crop(rng, _grey_rgb(elevation, elevation.min(), elevation.max()))


def _document(rng) -> Image.Image:
    paper = tuple(int(value) for value in rng.integers(225, 256, 3))
    image = Image.new("RGB", (600, 450), paper)
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(12, 28))
    font = ImageFont.load_default(size=size)
    for line in range(int(450 / (size * 1.5))):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 10))))
        draw.text((20, 10 + line * size * 1.5), words, fill=tuple(int(v) for v in rng.integers(0, 60, 3)), font=font)
    return image.rotate(float(rng.normal(0, 2)), fillcolor=paper)


def _chart(rng) -> Image.Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.5), dpi=100)
    x = np.arange(60)
    kind = rng.integers(0, 3)
    if kind == 0:
        axes.plot(x, np.cumsum(rng.normal(size=(60, 3)), axis=0))
    elif kind == 1:
        axes.bar(np.arange(8), rng.uniform(1, 10, 8), color=rng.uniform(0, 1, (8, 3)))
    else:
        axes.scatter(rng.normal(size=200), rng.normal(size=200), s=8)
    axes.set_title(" ".join(rng.choice(WORDS, 3)))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _noise(rng) -> Image.Image:
    kind = rng.integers(0, 3)
    if kind == 0:
        pixels = rng.integers(0, 256, (450, 600, 3))
    elif kind == 1:
        pixels = rng.normal(rng.uniform(60, 200, 3), rng.uniform(10, 60), (450, 600, 3))
    else:  # coarse blotches, upsampled
        pixels = np.kron(rng.integers(0, 256, (15, 20, 3)), np.ones((30, 30, 1)))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _gradient(rng) -> Image.Image:
    ys, xs = np.mgrid[0:450, 0:600] / np.array([450.0, 600.0])[:, None, None]
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if rng.random() < 0.5:
        weight = xs * np.cos(rng.uniform(0, np.pi)) + ys * np.sin(rng.uniform(0, np.pi))
    else:
        weight = np.hypot(xs - rng.uniform(), ys - rng.uniform())
    weight = (weight - weight.min()) / max(np.ptp(weight), 1e-9)
    return Image.fromarray((start + (end - start) * weight[..., None]).astype(np.uint8))


def make_ood_set(path: str, per_kind: int = 50, seed: int = 0) -> OodSet:
    """per_kind images of each of KINDS under path/KIND/, JPEG (PNG for documents and charts)."""
    rng = np.random.default_rng(seed)
    photos = _photographs()
    makers = {
        "photographs": lambda: _crop(rng, photos[int(rng.integers(len(photos)))]),
        "other_modalities": lambda: _other_modality(rng),
        "documents": lambda: _document(rng),
        "charts": lambda: _chart(rng),
        "noise": lambda: _noise(rng),
        "gradients": lambda: _gradient(rng),
    }
    counts = {}
    for kind in KINDS:
        folder = os.path.join(path, kind)
        os.makedirs(folder, exist_ok=True)
        lossless = kind in ("documents", "charts")
        for number in range(per_kind):
            name = os.path.join(folder, f"{kind}_{number:04d}.{'png' if lossless else 'jpg'}")
            options: dict[str, Any] = {} if lossless else {"quality": 90}
            makers[kind]().save(name, **options)
        counts[kind] = per_kind
    return OodSet(path=path, counts=counts)
