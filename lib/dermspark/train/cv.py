"""train --cv K: K models over a dataset's lesion-grouped folds (ingest --folds K), model i
tested on fold i, validated on fold i+1 (mod K) and trained on the rest. Each fold's output is
written whole to OUTPUT/fold-i, as one training run's would be; the summary (cv_metrics.json,
cv_report.md) once every fold is there.

The output belongs to one cross-validation run, named in OUTPUT/cv.json with the settings it
runs with. A rerun with that --run-id keeps the folds already written and resumes the first
unfinished one from its checkpoints; `--fold i` trains one fold, so a cluster can run the folds
as separate applications sharing a run id.
"""

import json
import logging

from pyspark.sql import SparkSession

from dermspark import DermsparkError, storage
from dermspark.bundle import CARD_FILE
from dermspark.commit import locked, mark, prepare_output, sibling_lock
from dermspark.labels import melanoma_index
from dermspark.manifests import BundleManifest, DatasetManifest
from dermspark.report.cross_validation import summarize, write_summary
from dermspark.report.model_card import model_card
from dermspark.report.subgroups import subgroups
from dermspark.results import CVResult
from dermspark.settings.train import TrainSettings
from dermspark.settings_core import defaults, to_dict
from dermspark.storage import join
from dermspark.train.driver import Fold, Target, train_model
from dermspark.train.mlflow_run import open_or_fail
from dermspark.train.predictions import join_folds, read_frame
from dermspark.train.setup import Setup, new_run_id

log = logging.getLogger(__name__)

CLAIM = "cv.json"
# Settings a fold may run with differently from the others: they change where and how it runs,
# not what it learns (and the tracking URI may hold a password).
# Settings that change no fold's model: a run may continue with others. ood_check adds figures to
# the reports only (the review flag is fitted on training and validation images alone).
OPERATIONAL = ("fold", "mode", "run_id", "mlflow_uri", "start_timeout", "tensorboard_dir", "ood_check")


def fold_splits(folds: int, index: int) -> dict[str, list[int]]:
    validation = (index + 1) % folds
    return {
        "train": [fold for fold in range(folds) if fold not in (index, validation)],
        "validation": [validation],
        "test": [index],
    }


def per_split_of(per_fold: dict, splits: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    """The ingest manifest's {fold: {class: images}} summed into {split: {class: images}}."""
    result = {}
    for split, folds in splits.items():
        counts: dict[str, int] = {}
        for fold in folds:
            for name, images in per_fold.get(str(fold), {}).items():
                counts[name] = counts.get(name, 0) + images
        result[split] = counts
    return result


def _check(settings: TrainSettings, manifest: DatasetManifest, dataset: str) -> int:
    folds = settings.cv  # its range and --fold's are the settings' rules
    have = manifest.folds or 0
    if have != folds:
        raise DermsparkError(
            f"--cv {folds} needs a dataset ingested with --folds {folds}; {dataset} has {have or 'no'} folds"
        )
    return folds


def _claim(output_url: str, settings: TrainSettings) -> dict:
    """cv.json's content (this run's id, folds and settings), once the output is known to be this
    run's (or is made so), under the output's lock: of two runs claiming one output, one does."""
    with locked(sibling_lock(output_url), output_url):
        return _claim_unlocked(output_url, settings)


def _claim_unlocked(output_url: str, settings: TrainSettings) -> dict:
    claim_url = join(output_url, CLAIM)
    wanted = {key: value for key, value in to_dict(settings).items() if key not in OPERATIONAL}
    if storage.exists(claim_url):
        claim = json.loads(storage.read_text(claim_url))
        if settings.run_id == claim["run_id"]:
            # A setting a later version added is not in an older claim: there it had its default.
            claimed = {**defaults(TrainSettings), **claim["settings"]}
            differ = sorted(
                key for key in wanted.keys() | claim["settings"].keys() if wanted.get(key) != claimed.get(key)
            )
            if differ:
                raise DermsparkError(
                    f"output {output_url} holds cross-validation run {claim['run_id']} with other "
                    f"settings ({', '.join(differ)}): give the same ones to continue it"
                )
            return claim
        if settings.mode != "overwrite":
            raise DermsparkError(
                f"output {output_url} holds cross-validation run {claim['run_id']}: pass --run-id "
                f"{claim['run_id']} to continue it, or --mode overwrite to replace it"
            )
        storage.delete(output_url)
    elif storage.exists(output_url):
        prepare_output(output_url, settings.mode, "train")
        storage.delete(output_url)
    claim = {"run_id": settings.run_id or new_run_id(), "folds": settings.cv, "settings": wanted}
    storage.write_text(claim_url, json.dumps(claim, indent=2, sort_keys=True))
    mark(output_url, "train")
    return claim


def _fold_cards(output_url: str, folds: int, summary: dict) -> None:
    """Each fold's model card again, with the summary of every fold beside its own figures."""
    for index in range(folds):
        bundle = join(output_url, f"fold-{index}", "model")
        manifest = BundleManifest.from_json(storage.read_text(join(bundle, "manifest.json")))
        metrics = json.loads(storage.read_text(join(output_url, f"fold-{index}", "metrics.json")))
        storage.write_text(join(bundle, CARD_FILE), model_card(manifest, metrics, summary))


def run_cv(spark: SparkSession, settings: TrainSettings, setup: Setup) -> CVResult:
    manifest, output_url = setup.dataset_manifest, setup.output_url
    folds = _check(settings, manifest, setup.dataset_root)
    claim = _claim(output_url, settings)
    run_id = claim["run_id"]
    parent = None
    if setup.mlflow_uri:
        parent = open_or_fail(
            setup.mlflow_uri,
            settings.experiment or settings.model,
            run_id,
            claim,
            {"dermspark.model": settings.model, "dermspark.cv_folds": str(folds)},
        )
    done = {index for index in range(folds) if storage.exists(join(output_url, f"fold-{index}", "metrics.json"))}
    trained = []
    for index in [settings.fold] if settings.fold is not None else range(folds):
        if index in done:
            log.info("train: fold %d of %d was written earlier: kept", index, folds)
            continue
        splits = fold_splits(folds, index)
        log.info("train: fold %d of %d: test fold %d, validation fold %d", index, folds, index, splits["validation"][0])
        fold = Fold(index, folds, splits, run_id, parent.run_id if parent else None)
        train_model(
            spark,
            settings,
            setup,
            Target(
                f"{run_id}-fold{index}",
                join(output_url, f"fold-{index}"),
                join(setup.store_root, run_id, f"fold-{index}"),
                per_split_of(manifest.per_fold or {}, splits),
                fold,
            ),
        )
        trained.append(index)
    # Another application may have finished the others meanwhile.
    finished = {index for index in range(folds) if storage.exists(join(output_url, f"fold-{index}", "metrics.json"))}
    if len(finished) < folds:
        return CVResult(output_url, run_id, folds, trained, waiting_for=sorted(set(range(folds)) - finished))
    classes = manifest.classes
    summary = summarize(
        [json.loads(storage.read_text(join(output_url, f"fold-{index}", "metrics.json"))) for index in range(folds)],
        classes,
    )
    notes = [
        f"model `{settings.model}`, cross-validation run `{run_id}`, {settings.num_proc} Horovod processes per fold",
        f"dataset `{setup.dataset_url}`, its lesions in {folds} folds (ingest --folds), each "
        "class shared out evenly; no lesion in two folds",
        "model i: tested on fold i, validated on fold i+1 (mod K: its temperature, melanoma threshold and "
        "best epoch), trained on the rest",
    ]
    oof_predictions = join_folds(output_url, folds)
    if oof_predictions:
        summary["subgroups"] = subgroups(read_frame(oof_predictions), list(classes), melanoma_index(classes))
    write_summary(output_url, summary, classes, f"{settings.model}: {folds}-fold cross-validation", notes)
    _fold_cards(output_url, folds, summary)
    if parent:
        parent.summarize_cv(output_url, summary)
    return CVResult(
        output_url,
        run_id,
        folds,
        trained,
        summary_figures=summary,
        oof_predictions=oof_predictions,
        mlflow_run_id=parent.run_id if parent else None,
    )
