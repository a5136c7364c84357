"""The monitor on real archives whose mix differs on purpose: a HAM10000 model (a fold of a 5-fold
run) scores, run after run, real HAM10000 images of its test fold split by where on the body the
lesion is, then images from other clinics, and the monitor job compares every run with the
bundle's validation predictions. Which runs were expected to move is written here, before the run:

- `other-sites-a`, `other-sites-b`: 400 test-fold images each from the sites not named below
  (trunk, upper extremity, abdomen, chest...): expected not flagged;
- `back`, `lower-extremity`: every test-fold image of that site: expected not flagged (the two
  commonest sites, whose mix is close to the whole set's);
- `head-and-neck` (face, scalp, neck, ear): expected flagged (HAM10000's face lesions are mostly
  benign keratoses and actinic keratoses, not nevi);
- `other-clinics`: 400 ISIC 2017 images, expected flagged (the model is near chance on them).

    DERMSPARK_DATA=../shared/data .venv/bin/python scripts/monitor_result.py --bundle BUNDLE \\
        --dataset DATASET --fold 0 --output RUNS/monitor-result

BUNDLE is fold `--fold` of `train --cv 5` on DATASET (`scripts/real_result.sh`); a bundle from
before the monitor's reference gets it first (scripts/fit_review.py --reference-only). Steps
whose output exists are skipped. Prints each run's drift and writes OUTPUT/monitor_result.json.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parent.parent
HEAD_AND_NECK = {"face", "scalp", "neck", "ear"}
EXPECTED = {
    "other-sites-a": False,
    "other-sites-b": False,
    "back": False,
    "lower-extremity": False,
    "head-and-neck": True,
    "other-clinics": True,
}


def run(log: Path, *args: str) -> None:
    print("[monitor-result]", " ".join(args[:2]), flush=True)
    with open(log, "ab") as handle:
        subprocess.run(list(args), check=True, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)


def test_fold(dataset: Path, fold: int) -> list[str]:
    table = ds.dataset(dataset / "images_75x100", format="parquet").to_table(columns=["image_id", "fold"])
    return [
        image
        for image, found in zip(table["image_id"].to_pylist(), table["fold"].to_pylist(), strict=True)
        if found == fold
    ]


def archives(data: Path, images: list[str], seed: int) -> dict[str, list[Path]]:
    """Each run's image files, chosen as the docstring says."""
    ham = data / "ham10000-200x150"
    with open(ham / "HAM10000_metadata.csv", newline="") as handle:
        site = {row["image_id"]: row["localization"] for row in csv.DictReader(handle)}
    rng = np.random.default_rng(seed)
    named = {"back": {"back"}, "lower-extremity": {"lower extremity"}, "head-and-neck": HEAD_AND_NECK}
    chosen = {name: [image for image in images if site[image] in sites] for name, sites in named.items()}
    rest = [image for image in images if not any(site[image] in sites for sites in named.values())]
    rest = list(rng.permutation(rest))
    chosen["other-sites-a"], chosen["other-sites-b"] = rest[:400], rest[400:800]
    files = {name: [ham / "images" / f"{image}.jpg" for image in found] for name, found in chosen.items()}
    external = sorted((data / "external-isic2017" / "images").glob("*.jpg"))
    files["other-clinics"] = [external[index] for index in sorted(rng.choice(len(external), 400, replace=False))]
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    data = Path(os.environ.get("DERMSPARK_DATA", ROOT.parent / "shared" / "data"))
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "jobs.log"
    python, submit = str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "spark-submit.sh")
    bundle = out / "bundle"
    if not (bundle / "manifest.json").exists():
        run(
            log,
            python,
            "scripts/fit_review.py",
            "--bundle",
            str(args.bundle),
            "--dataset",
            str(args.dataset),
            "--cv",
            "5",
            "--fold",
            str(args.fold),
            "--reference-only",
            "--output",
            str(bundle),
        )
    order = ["other-sites-a", "back", "lower-extremity", "other-sites-b", "head-and-neck", "other-clinics"]
    files = archives(data, test_fold(args.dataset, args.fold), args.seed)
    for number, name in enumerate(order):
        folder = out / "archives" / f"{number}-{name}"
        if not (out / "scores-done" / name).exists():
            folder.mkdir(parents=True, exist_ok=True)
            for path in files[name]:
                if not (folder / path.name).exists():
                    (folder / path.name).symlink_to(path)
            before = set((out / "scores" / "runs").glob("*")) if (out / "scores" / "runs").exists() else set()
            run(
                log,
                submit,
                "score",
                "--model",
                str(bundle),
                "--input",
                str(folder),
                "--output",
                str(out / "scores"),
                "--links",
                "follow",
                "--incremental",
            )
            (new,) = set((out / "scores" / "runs").glob("*")) - before
            (out / "scores-done").mkdir(exist_ok=True)
            (out / "scores-done" / name).write_text(new.name)
    run(
        log,
        submit,
        "monitor",
        "--predictions",
        str(out / "scores"),
        "--output",
        str(out / "report"),
        "--model",
        str(bundle),
    )
    report = json.loads((out / "report" / "monitor.json").read_text())
    by_run = {entry["period"]: entry for entry in report["periods"]["run"]}
    result = {}
    for name in order:
        entry = by_run[(out / "scores-done" / name).read_text()]
        found = entry["drift"]
        result[name] = {
            "images": len(files[name]),
            "scored": entry["scored"],
            "expected_flagged": EXPECTED[name],
            "flagged": found["flagged"],
            "judged": found["judged"],
            **{key: found[key] for key in ("psi_class_mix", "js_class_mix", "psi_confidence", "js_confidence")},
            "class_mix": entry["class_mix"],
            "review_rate": entry["review_rate"],
        }
    (out / "monitor_result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
