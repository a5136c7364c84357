"""The ingest job's settings."""

from dataclasses import dataclass

from dermspark import DermsparkError
from dermspark.commit import MODES
from dermspark.settings.common import COLOR_CONSTANCY, LINKS, LINKS_HELP
from dermspark.settings_core import required, setting


@dataclass(kw_only=True)
class IngestSettings:
    input: str = required("archive folder (any path or URL every node reaches)")
    output: str = required("output folder or URL (s3://, hdfs://) for the dataset, manifest and rejects")
    source: str = setting(
        "ham10000",
        "archive layout: ham10000, isic2019, folders (a folder per class), "
        "labels_csv (labels.csv with image_id and dx, images in images/), or dicom "
        "(DICOM files anywhere below, labelled by labels.csv or by their headers)",
        choices=("ham10000", "isic2019", "folders", "labels_csv", "dicom"),
    )
    label_space: str = setting(
        "ham10000",
        "classes to train on: ham10000 (7), isic2019 (8), melanoma (2)",
        choices=("ham10000", "isic2019", "melanoma"),
    )
    sizes: str = setting(
        "75x100",
        "HEIGHTxWIDTH list, one dataset each from one decode: 75x100 Benbrahim, "
        "90x120 Huber, 299x299 Benedetti, 256x256 Hitta",
    )
    resample: str = setting(
        "lanczos",
        "resampling filter (lanczos as the Hitta thesis)",
        choices=("lanczos", "bicubic", "bilinear", "box", "nearest"),
    )
    aspect: str = setting(
        "stretch", "stretch to the size (as all four papers) or crop the centre", choices=("stretch", "crop")
    )
    color_constancy: str = setting(
        "none",
        "colour constancy applied to every decoded image, here and by scoring "
        "and serving with the bundle: shades_of_gray (channels' p-means made "
        "equal), gray_world (their means); none as the papers",
        choices=COLOR_CONSTANCY,
    )
    color_constancy_power: float = setting(
        6.0, "shades_of_gray's norm p (1 to 64; 6 as Finlayson and Trezzi)", minimum=1, maximum=64
    )
    codec: str = setting(
        "png",
        "how images are stored: png (lossless, about half the bytes) or raw uint8 "
        "arrays (no encoding, twice the bytes: ingest at 75x100 no faster on 2 cores)",
        choices=("png", "raw"),
    )
    split: str = setting(
        "80/10/10",
        "train/validation/test ratios, or recipe:MODEL for that paper's "
        "(recipe:huber_cnn is 70/10/20); the split is grouped by lesion_id "
        "and stratified by class",
    )
    seed: int = setting(42, "seed of the split and the folds")
    folds: int = setting(
        0,
        "also give every lesion a fold, 0 to K-1, stratified by class (each class's "
        "images shared out evenly), for cross-validation; 0: no folds",
        minimum=0,
    )
    mode: str = setting("error", "when the output exists: error, or overwrite it", choices=MODES)
    links: str = setting("inside", LINKS_HELP, choices=LINKS)
    max_pixels: int = setting(
        89_478_485, "larger images are rejected before they are decoded (Pillow's decompression-bomb limit)", minimum=1
    )
    max_reject_fraction: float = setting(
        1.0,
        "fail (after writing the rejects) when a larger share of the "
        "inputs is rejected; 1.0 is off, partial archives are normal",
        minimum=0,
        maximum=1,
    )
    # Several files of small row groups, so every Horovod rank gets a shard of its own.
    num_files: int | None = setting(
        None,
        "Parquet files per size; default: about 2,000 images each "
        "(at least 8), a multiple of the task slots; 0 as the default",
        minimum=0,
    )
    row_group_size_mb: int = setting(4, "Parquet row group size", minimum=1)

    def rules(self) -> None:
        if self.folds == 1:
            raise DermsparkError(f"--folds needs at least 2 folds (or 0 for none), got {self.folds}")
