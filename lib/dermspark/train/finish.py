"""Rank 0 after the last stage: the temperature fitted on validation, the melanoma operating
point, the review flag fitted on the training split, metrics of the calibrated probabilities
(what scoring and serving give) on validation, test and external datasets, and the bundle.

Imported inside the Horovod worker, on rank 0 only.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from dermspark.train.worker_config import WorkerConfig


@dataclass
class Inferred:
    """A split as the bundle predicts it: pixels, probabilities before any temperature, the
    penultimate features (Bundle.infer), true classes and lesion ids."""

    images: np.ndarray
    raw: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    lesions: np.ndarray
    ids: np.ndarray

    def for_calibration(self) -> tuple:
        return self.raw, self.labels, self.lesions


def inferrer(bundle, batch_size: int):
    def infer(split_data) -> Inferred | None:
        if split_data is None:
            return None
        images, labels, lesions, ids = split_data
        outputs = [bundle.infer(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
        return Inferred(
            images,
            np.concatenate([raw for raw, _ in outputs]),
            np.concatenate([features for _, features in outputs]),
            labels,
            lesions,
            ids,
        )

    return infer


def evaluate_and_bundle(config: WorkerConfig, model, inputs, validation, state, resumed_from) -> dict:
    from dermspark.bundle import CARD_FILE, Bundle, save_bundle
    from dermspark.labels import melanoma_index
    from dermspark.report.calibration import calibrate
    from dermspark.report.model_card import model_card
    from dermspark.report.subgroups import subgroups
    from dermspark.train.predictions import write_predictions

    batch_size = config.plan.batch_size
    classes = config.classes
    # Scoring's compiled function, traced once for every batch size: Keras' predict traces its
    # step again for a split's partial last batch.
    bundle = Bundle(model, config.bundle_manifest, config.output_url + "/model")
    infer = inferrer(bundle, batch_size)
    test = infer(inputs.load("test", batch_size))
    valid = infer(validation)
    melanoma = melanoma_index(classes)
    calibration = calibrate(
        valid and valid.for_calibration(),
        test.for_calibration(),
        melanoma,
        config.target_sensitivity,
        config.calibration,
    )
    temperature = calibration.pop("temperature")
    point = calibration.pop("operating_point")
    metrics: dict[str, Any] = {"test": _measure(config, test, temperature)}
    if valid is not None:
        metrics["validation"] = _measure(config, valid, temperature)
    threshold = None if point is None else point["threshold"]["temperature"]
    external_splits = {external["name"]: infer(_external(config, external["url"])) for external in config.externals}
    if external_splits:
        metrics["external"] = {
            name: _evaluate_external(config, split, temperature, melanoma, threshold)
            for name, split in external_splits.items()
        }
    reviewer, metrics["review"] = _review(
        config, bundle, infer, inputs, {"validation": valid, "test": test, **external_splits}, temperature
    )
    metrics["calibration"] = {"temperature": temperature, **calibration}
    metrics["operating_point"] = None if point is None or melanoma is None else {"class": classes[melanoma], **point}
    training = _training(config, state, resumed_from)
    manifest = dataclasses.replace(
        config.bundle_manifest,
        reference=_reference(config, valid or test, "validation" if valid is not None else "test", temperature),
        metrics={key: metrics[key] for key in ("test", "validation", "external") if key in metrics},
        calibration={
            "temperature": temperature,
            "fitted_on": calibration["fitted_on"],
            **{key: calibration[key] for key in ("mode", "chosen", "fitted_temperature")},
        },
        operating_point=None
        if point is None or melanoma is None
        else {
            "class": classes[melanoma],
            "target_sensitivity": point["target_sensitivity"],
            "threshold": point["threshold"],
        },
        training={key: training[key] for key in ("stage_ends", "stopped_early", "ended_on", "resumed_from")},
    )
    tested = write_predictions(config, test, temperature, threshold, reviewer)
    metrics["subgroups"] = subgroups(tested, list(classes), melanoma)
    card = model_card(manifest, metrics)
    # The output is staged as a whole by the driver.
    save_bundle(config.output_url + "/model", model, manifest, staged=False, reviewer=reviewer, texts={CARD_FILE: card})
    return {**metrics, **training}


def _training(config: WorkerConfig, state, resumed_from: dict | None) -> dict:
    """How training went, as metrics.json records it."""
    import os

    return {
        "history": state.history,
        "stage_ends": state.stage_ends,
        "stopped_early": state.stopped_early,
        "ended_on": state.ended_on,
        "resumed_from": resumed_from,
        "checkpoints": config.store_url,
        # As the ranks ran it, so a rate measured from this history says what it was.
        "horovod_cycle_time_ms": float(os.environ["HOROVOD_CYCLE_TIME"]),
    }


def _reference(config, split: Inferred, name: str, temperature: float) -> dict:
    from dermspark.report.calibration import apply_temperature
    from dermspark.report.drift import reference

    return reference(apply_temperature(split.raw, temperature), config.classes, name)


def _measure(config, split: Inferred, temperature: float) -> dict:
    from dermspark.report.calibration import apply_temperature
    from dermspark.report.metrics import classification_metrics

    return classification_metrics(
        split.labels,
        apply_temperature(split.raw, temperature),
        config.classes,
        config.majority_label,
        config.positive_class,
        groups=split.lesions,
    )


def _external(config, url):
    from dermspark.train.inputs import Inputs

    return Inputs(url, 0, 1, config.seed).load(None, config.plan.batch_size)


def _evaluate_external(config, split: Inferred, temperature, melanoma, threshold) -> dict:
    """Every image of an external dataset, predicted as scoring would (the bundle's flips and
    temperature) and measured at the bundle's own melanoma threshold."""
    from dermspark.report.calibration import apply_temperature
    from dermspark.report.external import evaluate_heldout

    return evaluate_heldout(
        split.labels,
        apply_temperature(split.raw, temperature),
        split.lesions,
        config.classes,
        config.majority_label,
        config.positive_class,
        melanoma,
        threshold,
        uncalibrated=split.raw,
    )


def _review(config, bundle, infer, inputs, held_out: dict, temperature):
    settings = config.review
    train = infer(inputs.load("train", config.plan.batch_size))
    return fit_review(bundle, infer, train, held_out, temperature, settings)


def fit_review(bundle, infer, train: Inferred, held_out: dict, temperature: float, settings: dict):
    """The review flag fitted on the training split, thresholded on validation, and its figures
    on every held-out split (external datasets too) and on the ood_check folder's images.
    settings: the detector's `method`, the `rate` it flags, the `ood_check` folder or None."""
    method, rate, ood_check = settings["method"], settings["rate"], settings.get("ood_check")
    from dermspark import review
    from dermspark.report.calibration import apply_temperature
    from dermspark.report.review import detection

    kernel, bias = bundle.model.layers[-1].get_weights()

    def as_split(split: Inferred):
        return review.Split(split.images, split.features, split.raw, split.labels)

    valid = held_out.get("validation")
    reviewer = review.fit(method, rate, kernel, bias, as_split(train), valid and as_split(valid))

    def views(split: Inferred):
        return split.images, split.features, split.raw, apply_temperature(split.raw, temperature)

    ood = None
    if ood_check:
        images = review.read_folder(ood_check, bundle.input_size, bundle.decode_options)
        ood = views(
            infer((images, np.zeros(len(images), dtype=np.int64), np.zeros(len(images)), np.zeros(len(images))))
        )
    return reviewer, detection(
        reviewer, {name: views(split) for name, split in held_out.items() if split is not None}, ood
    )
