"""Fit the review flag onto a bundle trained before it, from the dataset it trained on, and print
its figures: the share of validation and test flagged, and with --ood-check each detector's
AUROC and the share of those images flagged. No Spark, one process; the new bundle (same
weights, same manifest plus `review` and the monitor's `reference`) goes to --output. With
--reference-only, the reference alone is added (the validation split's predictions, as
training records them), and the review flag the bundle has, if any, is kept.

    .venv/bin/python scripts/fit_review.py --bundle MODEL/model --dataset DATASET [--cv K --fold I] \\
        [--ood-check OOD] [--method mahalanobis] [--rate 0.05] [--reference-only] --output REVIEWED
"""

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import warnings

from dermspark import storage
from dermspark.bundle import load_bundle, save_bundle
from dermspark.report.calibration import apply_temperature
from dermspark.report.drift import reference
from dermspark.settings.common import REVIEW_METHODS
from dermspark.train.cv import fold_splits
from dermspark.train.dataset import pick_size, read_manifest
from dermspark.train.finish import fit_review, inferrer
from dermspark.train.inputs import Inputs


def main(argv=None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)  # Petastorm on pyarrow 14, every read
    parser = argparse.ArgumentParser(
        prog="scripts/fit_review.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--dataset", required=True, help="the ingested dataset the bundle trained on")
    parser.add_argument("--cv", type=int, default=0, help="with --fold: the bundle is that fold's of a K-fold run")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--ood-check", help="a folder of images that are not dermoscopy")
    parser.add_argument("--method", default="mahalanobis", choices=REVIEW_METHODS)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--reference-only", action="store_true", help="add the monitor's reference alone")
    parser.add_argument("--output", required=True, help="where the bundle with its review flag goes")
    args = parser.parse_args(argv)

    # Petastorm prints to stdout; the figures alone go there.
    with contextlib.redirect_stdout(sys.stderr):
        reviewer, figures, bundle = _fit(args)
    manifest = dataclasses.replace(bundle.manifest, reference=figures.pop("reference"))
    save_bundle(args.output, bundle.model, manifest, reviewer=reviewer)
    print(json.dumps(figures, indent=2))


def _fit(args):
    bundle = load_bundle(args.bundle)
    root = storage.to_url(args.dataset)
    url = storage.join(root, pick_size(read_manifest(root), bundle.input_size, bundle.manifest.model_name))
    inputs = Inputs(url, 0, 1, 0, fold_splits(args.cv, args.fold) if args.cv else None)
    infer = inferrer(bundle, 64)
    names = ("validation",) if args.reference_only else ("train", "validation", "test")
    splits = {name: infer(inputs.load(name, 64)) for name in names}
    held_out = splits["validation"]
    recorded = reference(apply_temperature(held_out.raw, bundle.temperature), bundle.classes, "validation")
    if args.reference_only:
        return bundle.reviewer, {"reference": recorded}, bundle
    reviewer, figures = fit_review(
        bundle,
        infer,
        splits.pop("train"),
        splits,
        bundle.temperature,
        {"method": args.method, "rate": args.rate, "ood_check": args.ood_check},
    )
    return reviewer, {**figures, "reference": recorded}, bundle


if __name__ == "__main__":
    main()
