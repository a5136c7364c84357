"""The train job's settings, cross-validation's included."""

from dataclasses import dataclass

from dermspark import DermsparkError
from dermspark.commit import MODES
from dermspark.settings.common import REVIEW_METHODS, TEST_TIME_AUGMENTATIONS, TRAIN_CALIBRATIONS, mlflow_uri_setting
from dermspark.settings_core import required, setting


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
