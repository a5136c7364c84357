"""A recipe plus the job's settings plus the dataset's counts: what each Horovod rank will do.

Pure Python on the driver, so every decision (epochs per stage, sampling rates, class weights,
steps per epoch) is made once, saved with the run, and testable without starting Horovod.
"""

import dataclasses
import math

from dermspark import DermsparkError
from dermspark.models.registry import Recipe
from dermspark.train.parent import fine_tune_stages
from dermspark.train.worker_config import StagePlan, TrainPlan

IMBALANCE_CHOICES = ("class_weights", "cap", "oversample")
DEFAULT_CAP = 450  # Benedetti et al.
OPTIMIZERS = ("adam", "sgd_nesterov")


def parse_imbalance(text: str | None, recipe: Recipe, cap_setting: int | None) -> dict:
    """None -> the recipe's; 'none'; or a comma list of class_weights, cap, oversample."""
    if not text:
        chosen = {
            name
            for name, on in (
                ("class_weights", recipe.imbalance.class_weights),
                ("cap", recipe.imbalance.cap_per_class > 0),
                ("oversample", recipe.imbalance.oversample),
            )
            if on
        }
    elif text == "none":
        chosen = set()
    else:
        chosen = {part.strip() for part in text.split(",") if part.strip()}
        unknown = sorted(chosen - set(IMBALANCE_CHOICES))
        if unknown:
            raise DermsparkError(
                f"unknown --imbalance {', '.join(unknown)}; use none or any of {', '.join(IMBALANCE_CHOICES)}"
            )
    cap = cap_setting or recipe.imbalance.cap_per_class or DEFAULT_CAP
    return {
        "class_weights": "class_weights" in chosen,
        "cap_per_class": cap if "cap" in chosen else 0,
        "oversample": "oversample" in chosen,
    }


def sampling_rates(train_counts: list[int], imbalance: dict) -> list[float]:
    """Expected copies per epoch of each training image, by class. A cap draws a class's images
    down to the cap; oversampling draws rarer classes up to the largest (or to the cap)."""
    largest = max(train_counts)
    rates = []
    for count in train_counts:
        if count == 0:
            rates.append(0.0)
            continue
        target = float(count)
        if imbalance["oversample"]:
            target = float(largest)
        if imbalance["cap_per_class"]:
            target = min(target, float(imbalance["cap_per_class"]))
        rates.append(target / count)
    return rates


def class_weights(effective_counts: list[float]) -> dict[int, float]:
    """n / (classes present * n_class) over what an epoch actually draws: 1.0 when balanced."""
    present = [count for count in effective_counts if count > 0]
    total = sum(present)
    return {
        index: (total / (len(present) * count) if count > 0 else 1.0) for index, count in enumerate(effective_counts)
    }


# C901, PLR0913: one override per training setting, each None for the recipe's, applied in turn
def stage_plan(  # noqa: C901, PLR0913
    recipe: Recipe,
    epochs: int | None = None,
    fine_tune_epochs: int | None = None,
    learning_rate: float | None = None,
    stage_end: str | None = None,
    lr_schedule: str | None = None,
    monitor: str | None = None,
    ema: float = 0.0,
) -> list[StagePlan]:
    """None is the recipe's, for every argument. stage_end: 'best' ends every stage on its best
    monitored epoch, 'last' on its last epoch. lr_schedule: 'constant' (no decay) or 'cosine'
    (after the warmup, down to 0 at the stage's last epoch) for every stage. monitor:
    val_loss or val_balanced_accuracy, for every stage's best epoch and early stopping. ema: the
    momentum of every stage's weight average, 0 for none."""
    if not 0 <= ema < 1:
        raise DermsparkError(f"--ema must be at least 0 and below 1 (0.99 to 0.999 are usual), not {ema}")
    stages = []
    for stage in recipe.stages:
        changes: dict = {"ema": ema}
        if lr_schedule:
            # Either choice replaces the recipe's own decay.
            changes.update(cosine=lr_schedule == "cosine", decay_steps=0, decay_rate=1.0)
        if stage_end:
            changes["restore_best"] = stage_end == "best"
        if monitor:
            changes["monitor"] = monitor
        stages.append(StagePlan(**{**dataclasses.asdict(stage), **changes}))
    if epochs is not None:
        stages[0] = dataclasses.replace(stages[0], epochs=epochs)
    if learning_rate is not None:
        if learning_rate <= 0:
            raise DermsparkError(f"--learning-rate must be above 0, not {learning_rate}")
        stages[0] = dataclasses.replace(stages[0], learning_rate=learning_rate)
    if len(stages) > 1 and fine_tune_epochs is not None:
        stages[1] = dataclasses.replace(stages[1], epochs=fine_tune_epochs)
    for stage in stages:
        if stage.optimizer not in OPTIMIZERS:
            raise DermsparkError(f"unknown optimizer {stage.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    stages = [stage for stage in stages if stage.epochs > 0]
    if not stages:
        raise DermsparkError("no epochs to train: --epochs must be at least 1")
    return stages


def label_smoothing(setting: float | None, recipe: Recipe) -> float:
    value = recipe.label_smoothing if setting is None else setting
    if not 0 <= value < 1:
        raise DermsparkError(f"--label-smoothing must be at least 0 and below 1 (0.1 is usual), not {value}")
    return value


def cache_training(rows_per_shard: list[int], input_size: tuple[int, int], cache_mb: int) -> bool:
    """Whether every rank's training shard, decoded to uint8 pixels, fits in cache_mb MiB. Then
    each rank reads Petastorm once and later epochs come from memory, as plain Keras' arrays do."""
    if cache_mb < 0:
        raise DermsparkError(f"--cache-mb must be 0 (always stream) or more, got {cache_mb}")
    height, width = input_size
    return cache_mb > 0 and max(rows_per_shard) * height * width * 3 <= cache_mb * 2**20


def make_plan(recipe: Recipe, settings, classes: list[str], per_split: dict, num_proc: int) -> TrainPlan:
    """per_split: the dataset manifest's {split: {class: count}}."""
    train = per_split.get("train", {})
    train_counts = [train.get(name, 0) for name in classes]
    imbalance = parse_imbalance(settings.imbalance, recipe, settings.cap_per_class)
    rates = sampling_rates(train_counts, imbalance)
    effective = [count * rate for count, rate in zip(train_counts, rates, strict=True)]
    batch_size = settings.batch_size or recipe.batch_size
    validation = sum(per_split.get("validation", {}).values())
    stages = stage_plan(
        recipe,
        settings.epochs,
        settings.fine_tune_epochs,
        settings.learning_rate,
        settings.stage_end,
        settings.lr_schedule,
        settings.monitor,
        settings.ema,
    )
    return TrainPlan(
        batch_size=batch_size,
        stages=tuple(fine_tune_stages(stages, settings) if settings.init_from else stages),
        imbalance=imbalance,
        sampling_rates=rates,
        class_weights=class_weights(effective) if imbalance["class_weights"] else None,
        # Every rank runs the same number of steps, so no rank waits at an epoch's end.
        steps_per_epoch=max(1, math.ceil(sum(effective) / (batch_size * num_proc))),
        label_smoothing=label_smoothing(settings.label_smoothing, recipe),
        validation_steps=math.ceil(validation / batch_size),
    )
