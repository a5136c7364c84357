"""The out-of-fold table and the subgroup report of a cross-validation trained before dermspark
wrote them: each fold's bundle predicts its own test fold again (as training's rank 0 does: the
bundle's flips, temperature, melanoma threshold and review flag), then the folds are joined and
broken down by subgroup. No Spark, one process. Checks that every fold's confusion matrix
recomputed from the table is the one its metrics.json holds, and says so.

    .venv/bin/python scripts/oof_table.py --cv CV_OUTPUT --dataset DATASET --output FOLDER

Writes FOLDER/fold-i/test_predictions.parquet, FOLDER/oof_predictions.parquet,
FOLDER/subgroups.json and FOLDER/subgroups.md; the CV output is only read.
"""

import argparse
import contextlib
import json
import os
import sys
import warnings
from types import SimpleNamespace

from dermspark import storage
from dermspark.bundle import load_bundle
from dermspark.labels import melanoma_index
from dermspark.report.subgroups import markdown_lines, subgroups
from dermspark.train.cv import fold_splits
from dermspark.train.dataset import pick_size, read_manifest
from dermspark.train.finish import inferrer
from dermspark.train.inputs import Inputs
from dermspark.train.predictions import join_folds, read_frame, write_predictions
from sklearn.metrics import confusion_matrix


def fold_table(cv: str, dataset: str, folds: int, index: int, output: str):
    bundle = load_bundle(storage.join(cv, f"fold-{index}", "model"))
    root = storage.to_url(dataset)
    url = storage.join(root, pick_size(read_manifest(root), bundle.input_size, bundle.manifest.model_name))
    splits = fold_splits(folds, index)
    test = inferrer(bundle, 64)(Inputs(url, 0, 1, 0, splits).load("test", 64))
    threshold = bundle.manifest.threshold("temperature")
    # The four fields of a rank's WorkerConfig that the predictions table reads.
    config = SimpleNamespace(
        classes=bundle.classes, folds=splits, dataset_url=url, output_url=storage.join(output, f"fold-{index}")
    )
    return write_predictions(config, test, bundle.temperature, threshold, bundle.reviewer), bundle.classes


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)  # Petastorm on pyarrow 14, every read
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cv", required=True, help="a train --cv output")
    parser.add_argument("--dataset", required=True, help="the dataset it trained on")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    cv, output = storage.to_url(args.cv), storage.to_url(args.output)
    folds = json.loads(storage.read_text(storage.join(cv, "cv.json")))["folds"]
    recomputed = []
    with contextlib.redirect_stdout(sys.stderr):  # Petastorm prints; the figures alone go to stdout
        for index in range(folds):
            frame, classes = fold_table(cv, args.dataset, folds, index, output)
            metrics = json.loads(storage.read_text(storage.join(cv, f"fold-{index}", "metrics.json")))
            matrix = confusion_matrix(frame["true_label"], frame["predicted_label"], labels=classes).tolist()
            recomputed.append(matrix == metrics["test"]["confusion_matrix"])
    table = join_folds(output, folds)
    found = subgroups(read_frame(table), list(classes), melanoma_index(classes))
    storage.write_text(storage.join(output, "subgroups.json"), json.dumps(found, indent=2))
    storage.write_text(
        storage.join(output, "subgroups.md"),
        "\n".join(markdown_lines(found, f"Out-of-fold predictions of {args.cv} by subgroup")) + "\n",
    )
    print(
        f"{folds} folds; each fold's confusion matrix recomputed from the table equals its metrics.json's: {recomputed}"
    )
    agree = recompute(read_frame(table), found, list(classes))
    print(f"subgroup figures recomputed from the table with scikit-learn and pandas: {agree[0]} of {agree[1]} agree")
    print("\n".join(markdown_lines(found)))
    return 0 if all(recomputed) and agree[0] == agree[1] else 1


def recompute(frame, found: dict, classes: list[str]) -> tuple[int, int]:
    """Each judged group's balanced accuracy and melanoma sensitivity and specificity, recomputed
    from the table another way: (how many agree, how many were checked)."""
    import numpy as np
    from dermspark.report.subgroups import age_band
    from sklearn.metrics import balanced_accuracy_score

    frame = frame.assign(age_band=frame["age"].map(age_band))
    checked = agree = 0
    for attribute, groups in found["by"].items():
        values = frame[attribute].fillna("unknown").astype(str)
        for value, entry in groups.items():
            if not entry["judged"]:
                continue
            rows = frame[values == value]
            mel = rows["true_label"] == "mel"
            expected = {
                "balanced_accuracy": balanced_accuracy_score(rows["true_label"], rows["predicted_label"]),
                "melanoma_specificity": 1 - rows.loc[~mel, "melanoma_flag"].mean() if (~mel).any() else None,
            }
            if entry.get("melanoma_sensitivity") is not None:
                expected["melanoma_sensitivity"] = rows.loc[mel, "melanoma_flag"].mean()
            for name, value_expected in expected.items():
                checked += 1
                agree += (value_expected is None and entry[name] is None) or bool(
                    np.isclose(entry[name], value_expected)
                )
    return agree, checked


if __name__ == "__main__":
    sys.exit(main())
