"""One typed settings object per job. Each setting is declared once, here: its type, default,
help text and choices. The command-line flags are generated from these declarations, and
conf/<job>.yaml holds only what differs from them.

Order of precedence: these defaults, then the YAML file, then flags. Unknown keys and values
outside a setting's choices are errors, so a typo never passes silently. None always means
"not given": the model recipe's value for training settings, nothing for the others. The
resolved object is saved next to every dataset, model and scoring run.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any

from dermspark import DermsparkError
from dermspark.commit import MODES  # defined once, beside the commits that obey it
from dermspark.settings_core import required, setting

CALIBRATIONS = ("temperature", "none")
TRAIN_CALIBRATIONS = ("auto", "temperature", "none")
LINKS = ("inside", "follow")
LINKS_HELP = (
    "symbolic links in the input: inside follows them to files inside the input only (one leading out "
    "is rejected as outside_archive); follow follows them anywhere, for a folder of links to a selection"
)
TEST_TIME_AUGMENTATIONS = ("none", "flips")
# none: the pixels as decoded (the papers'); shades_of_gray: each image's channels scaled so that
# their Minkowski p-means are equal (Finlayson and Trezzi 2004, as ISIC challenge entries did);
# gray_world: the same with p = 1 (channel means equal). Applied by images.py.
COLOR_CONSTANCY = ("none", "shades_of_gray", "gray_world")
# The review flag's out-of-distribution detectors (dermspark.review); mahalanobis chosen by
# detection AUROC (docs/score.md).
REVIEW_METHODS = ("mahalanobis", "energy", "max_softmax")
CONFIDENCE_HELP = (
    "flag a prediction for review (reason 'uncertain') when its top calibrated probability is "
    "under this; default: never"
)
THRESHOLD_HELP = (
    "melanoma probability at or above which melanoma_flag is set; default: the bundle's "
    "operating point (chosen on validation for train's --target-sensitivity), else 0.5"
)


def mlflow_uri_setting() -> Any:
    """The one tracking-server setting, shared by train, score and serve."""
    return setting(
        None,
        "MLflow tracking server (e.g. http://127.0.0.1:5000); default: "
        "MLFLOW_TRACKING_URI; none: no tracking, and no models:/ URIs",
    )


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


@dataclass(kw_only=True)
class TrainSettings:
    dataset: str = required("output folder or URL of the ingest job")
    output: str = required("output folder or URL (s3://, hdfs://) for the bundle, metrics and report")
    model: str = setting("benbrahim_cnn", "registered model name (docs/train.md lists them)")
    epochs: int | None = setting(None, "epochs of the first stage; default: the recipe's (the paper's)", minimum=1)
    fine_tune_epochs: int | None = setting(
        None, "epochs of the second stage of two-stage recipes; 0 skips it; default: the recipe's", minimum=0
    )
    batch_size: int | None = setting(None, "per process; default: the recipe's", minimum=1)
    learning_rate: float | None = setting(
        None,
        "of the first stage, for one process (scaled by num_proc, reached by warmup); default: the recipe's",
        above=0,
    )
    imbalance: str | None = setting(
        None, "rare classes: none, or any of class_weights,cap,oversample joined by commas; default: the recipe's"
    )
    cap_per_class: int | None = setting(
        None,
        "with cap: images drawn per class and epoch at most; default: the recipe's, else 450 as Benedetti et al.",
        minimum=1,
    )
    stage_end: str | None = setting(
        None,
        "how each stage ends: on its best epoch (by monitor) or its last; default: the recipe's",
        choices=("best", "last"),
    )
    monitor: str | None = setting(
        None,
        "what the best epoch and early stopping go by; default: the recipe's (val_loss)",
        choices=("val_loss", "val_balanced_accuracy"),
    )
    lr_schedule: str | None = setting(
        None,
        "learning rate within a stage: constant, or cosine (after the "
        "warmup, down to 0 at the stage's last epoch); default: the "
        "recipe's",
        choices=("constant", "cosine"),
    )
    ema: float = setting(
        0.0,
        "momentum of a moving average of the weights (e.g. 0.998), kept beside them: "
        "each epoch's validation and checkpoint, the best epoch and the bundle use the "
        "average, while training goes on from its own weights; 0: none",
        minimum=0,
        below=1,
    )
    tta: str | None = setting(
        None,
        "test-time augmentation, kept in the bundle: flips: each prediction is the mean "
        "of the probabilities of the image and its horizontal, vertical and double flips "
        "(4 passes), in the final evaluation, calibration, scoring and serving alike; "
        "none: one pass; default: the recipe's (none for the papers' models)",
        choices=TEST_TIME_AUGMENTATIONS,
    )
    label_smoothing: float | None = setting(
        None,
        "share of each training label spread evenly over the classes "
        "(Szegedy et al.); default: the recipe's (0 for the papers')",
        minimum=0,
        below=1,
    )
    weights: str | None = setting(
        None,
        "pretrained base: none, imagenet (the driver's Keras cache), a file "
        "on the driver or a URL; default: the recipe's",
    )
    init_from: str | None = setting(
        None,
        "fine-tune a trained bundle (folder, URL, models:/NAME/VERSION) of the same "
        "--model: its weights, its classes mapped to the dataset's (refused when "
        "they cannot be); the head alone for --epochs (default 5), then every layer "
        "but batch normalisation at a tenth of the rate for --fine-tune-epochs "
        "(default 10)",
    )
    run_id: str | None = setting(
        None,
        "rerun with the same id to resume from its last checkpoint; default: a new run named by the time it starts",
    )
    cv: int = setting(
        0,
        "cross-validation over a dataset ingested with --folds K: K models, model i tested "
        "on fold i, validated on fold i+1 (mod K), trained on the rest; OUTPUT/fold-i each, "
        "then cv_metrics.json and cv_report.md. 0: the dataset's own split",
        minimum=0,
    )
    fold: int | None = setting(
        None,
        "with --cv: train fold i alone, so folds can run as separate "
        "applications (give each the same --run-id); the summary is written "
        "by whichever finds every fold done",
        minimum=0,
    )
    external: str | None = setting(
        None,
        "comma-separated ingested datasets from other sources (other clinics, "
        "cameras): every image of each is predicted by the final bundle, "
        "never trained or tuned on, and reported beside the test split",
    )
    store: str | None = setting(
        None, "checkpoint store URL (file://, hdfs://, s3://); default: OUTPUT.checkpoints, on the output's storage"
    )
    num_proc: int = setting(2, "Horovod processes; the cluster must offer this many task slots at once", minimum=1)
    seed: int = setting(42, "seed of weights, augmentation and sampling (plus the rank)")
    mode: str = setting("error", "when the output exists: error, or overwrite it", choices=MODES)
    start_timeout: int = setting(
        120,
        "seconds to wait for every Horovod process to start before failing, "
        "instead of hanging when the cluster cannot host num_proc tasks",
        minimum=1,
    )
    cache_mb: int = setting(
        2048,
        "a rank whose training shard fits in this many MiB of decoded pixels "
        "reads it once and trains later epochs from memory; 0 always streams",
        minimum=0,
    )
    # Every look is a message exchange between the ranks: Horovod's 1 ms costs training rate on
    # small machines, much longer delays each step's allreduce (docs/benchmarks.md).
    cycle_time_ms: float = setting(
        10.0, "how often Horovod's background thread looks for gradients to reduce, in ms", above=0
    )
    model_options: dict = setting({}, "JSON overrides for the model builder, e.g. '{\"dropout\": 0.3}'")
    target_sensitivity: float = setting(
        0.95,
        "models with a melanoma class: the melanoma threshold stored "
        "in the bundle is the largest that flags this share of the "
        "validation split's melanomas",
        above=0,
        maximum=1,
    )
    calibration: str = setting(
        "auto",
        "the temperature scoring and serving apply, fitted on validation: auto "
        "keeps it unless it raises validation's calibration error (then 1, the "
        "model's own probabilities); temperature always keeps it; none: 1",
        choices=TRAIN_CALIBRATIONS,
    )
    review_rate: float = setting(
        0.05,
        "the review flag's out-of-distribution detector, fitted on the training "
        "split, is thresholded to flag this share of the validation split "
        "(0 to 0.5)",
        above=0,
        maximum=0.5,
    )
    review_method: str = setting(
        "mahalanobis",
        "the detector: mahalanobis (penultimate features to the nearest "
        "class mean), energy (of the logits), max_softmax",
        choices=REVIEW_METHODS,
    )
    ood_check: str | None = setting(
        None,
        "a folder of images that are not the training data's kind (documents, "
        "photographs, other modalities): the report gives the share flagged "
        "and each detector's AUROC against the test split",
    )
    mlflow_uri: str | None = mlflow_uri_setting()
    experiment: str | None = setting(None, "MLflow experiment of the run; default: the model name")
    register: str | None = setting(
        None,
        "register the bundle in MLflow's model registry under this name "
        "(letters, digits, '.', '_', '-') and print its version",
    )
    tensorboard_dir: str | None = setting(
        None,
        "TensorBoard logs, live, in DIR/RUN_ID (any store); "
        "default: the run's checkpoint folder. The output gets a "
        "copy either way",
    )

    def rules(self) -> None:
        if not self.cv and self.fold is not None:
            raise DermsparkError("--fold needs --cv K, the number of folds")
        if self.cv and self.cv < 3:
            raise DermsparkError(f"--cv needs at least 3 folds (test, validation and one to train on), got {self.cv}")
        if self.cv and self.fold is not None and self.fold >= self.cv:
            raise DermsparkError(f"--fold must be within 0 to {self.cv - 1}, got {self.fold}")
        if self.cv and self.register:
            raise DermsparkError(
                "--register takes one model, and cross-validation trains one per fold: train "
                "without --cv on the dataset's own split to register a model"
            )


@dataclass(kw_only=True)
class ScoreSettings:
    model: str = required(
        "bundle written by the train job: a folder, a URL, or a registered "
        "model (models:/NAME/VERSION, models:/NAME@ALIAS)"
    )
    input: str = required("image folder (recursive), Parquet table, or ingested dataset")
    output: str = required("predictions table and run records; grows run by run")
    input_format: str = setting(
        "auto",
        "files: a folder tree of images; parquet: a table with a path "
        "(or bytes) column; petastorm: a dataset made by ingest; auto: "
        "told apart by what the input holds",
        choices=("auto", "files", "parquet", "petastorm"),
    )
    glob: str = setting(
        "*",
        "file name filter for folders, e.g. '*.jpg'; every file that matches gets "
        "a row: a prediction or an error reason",
    )
    path_column: str = setting("path", "Parquet inputs: the column of file paths")
    content_column: str | None = setting(
        None, "Parquet inputs: a column of image bytes; default: read the files at path_column"
    )
    split: str | None = setting(None, "ingested datasets: score this split only; default: all")
    batch_size: int = setting(64, "images per Arrow batch and per model call", minimum=1)
    top_k: int = setting(3, "labels kept per image, most likely first", minimum=1)
    calibration: str = setting(
        "temperature",
        "temperature: the probabilities scaled by the bundle's "
        "temperature (fitted on validation); none: the model's own",
        choices=CALIBRATIONS,
    )
    melanoma_threshold: float | None = setting(None, THRESHOLD_HELP, minimum=0, maximum=1)
    review_confidence: float | None = setting(None, CONFIDENCE_HELP, minimum=0, maximum=1)
    explain: bool = setting(
        False,
        "also write a Grad-CAM heatmap of the predicted class per image, a PNG "
        "under the run's explanations/ named by its content hash (slower)",
    )
    incremental: bool = setting(False, "skip files whose content this model version already scored")
    links: str = setting("inside", LINKS_HELP, choices=LINKS)
    dicom_sr: str | None = setting(
        None,
        "also write one DICOM Structured Report per scored DICOM instance into this "
        "folder (TID 1500: class probabilities, predicted class, melanoma and "
        "review flags, the model), for a PACS to import",
    )
    labels: str | None = setting(None, "HAM10000 metadata or ISIC 2019 ground truth CSV: adds a metrics report")
    model_version: str | None = setting(
        None, "default: NAME/VERSION for a registered model, else the bundle's training run id and hash"
    )
    mode: str = setting(
        "error",
        "error: refuse to rescore a model version already in the output; overwrite: replace its rows",
        choices=MODES,
    )
    mlflow_uri: str | None = mlflow_uri_setting()

    def rules(self) -> None:
        if self.incremental and self.mode == "overwrite":
            raise DermsparkError("--incremental keeps earlier rows and --mode overwrite replaces them: pick one")


@dataclass(kw_only=True)
class ServeSettings:
    model: str = required(
        "bundle written by the train job: a folder, a URL, or a registered "
        "model (models:/NAME/VERSION, models:/NAME@ALIAS)"
    )
    # Loopback by default: serving to a network is a choice made with --host.
    host: str = setting("127.0.0.1", "address to listen on; 0.0.0.0 serves every interface")
    port: int = setting(8000, "port to listen on", minimum=1, maximum=65535)
    max_upload_mb: float = setting(10.0, "larger uploads get 413 before they are read", above=0)
    cors_origins: str | None = setting(
        None, "comma-separated origins whose web pages may call the API; default: none (CORS closed)"
    )
    calibration: str = setting(
        "temperature", "temperature: the bundle's calibrated probabilities; none: the model's own", choices=CALIBRATIONS
    )
    melanoma_threshold: float | None = setting(None, THRESHOLD_HELP, minimum=0, maximum=1)
    review_confidence: float | None = setting(None, CONFIDENCE_HELP, minimum=0, maximum=1)
    auth_token_file: str | None = setting(
        None,
        "a file holding the token every request but /health and the page "
        "must carry as 'Authorization: Bearer TOKEN'; default: "
        "DERMSPARK_API_TOKEN, else none (no token asked)",
    )
    api_docs: bool = setting(False, "serve FastAPI's generated API pages (/docs, /redoc, /openapi.json)")
    tls_certfile: str | None = setting(
        None, "PEM certificate (chain) to serve HTTPS with, beside --tls-keyfile; default: plain HTTP"
    )
    tls_keyfile: str | None = setting(None, "PEM private key of --tls-certfile")
    mlflow_uri: str | None = mlflow_uri_setting()

    def rules(self) -> None:
        if bool(self.tls_certfile) != bool(self.tls_keyfile):
            raise DermsparkError("--tls-certfile and --tls-keyfile go together: give both, or neither for plain HTTP")


@dataclass(kw_only=True)
class MonitorSettings:
    predictions: str = required("a scoring output (score's --output: predictions/ and runs/)")
    output: str = required(
        "report folder: monitor.json, report.md, plots; a rerun reads only the "
        "runs scored since the last and replaces the report"
    )
    model: str | None = setting(
        None,
        "bundle to compare with: its held-out predictions, recorded at training, are "
        "the reference for drift; default: no drift figures",
    )
    since: str | None = setting(None, "only runs scored on or after this date (YYYY-MM-DD)")
    mlflow_uri: str | None = mlflow_uri_setting()

    def rules(self) -> None:
        try:
            if self.since is not None:
                date.fromisoformat(self.since)
        except ValueError:
            raise DermsparkError(f"--since must be a date, YYYY-MM-DD, got {self.since!r}") from None
