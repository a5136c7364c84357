"""The fine-tuning learning curve a hospital reads before labeling its own images: a bundle
trained on HAM10000 alone, fine-tuned (train --init-from) on N labeled images of another source
and measured on other images of that source that no run trains, tunes or stops on.

    .venv/bin/python scripts/fine_tune_curve.py --parent BUNDLE --output DIR [--sizes 50,100,200,400,all]

The external set (default $DERMSPARK_DATA/external-isic2017) is split once, by lesion (by image
where it has no lesion ids) and stratified by class, into a pool (half) and a test half (ingest
--split 50/50). Each N draws N pool images, stratified, nested (the 50 are among the 100, ...),
ingests them (--split 70/15/15: their own validation picks the epoch, temperature and threshold)
and fine-tunes with TRAIN_FLAGS, the test half as --external. N = 0 is the parent itself, scored
with labels on the test half. Every step is skipped when its output exists, so a rerun resumes.
Prints and writes DIR/curve.json and DIR/curve.md. Uses the real jobs through spark-submit.sh.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
FLAGS = [
    "--learning-rate",
    "0.0005",
    "--imbalance",
    "cap,oversample",
    "--cap-per-class",
    "400",
    "--stage-end",
    "best",
    "--monitor",
    "val_balanced_accuracy",
    "--num-proc",
    "2",
]


def submit(*args: str) -> None:
    print("[curve]", " ".join(args[:1]), "...", flush=True)
    subprocess.run([str(ROOT / "spark-submit.sh"), *args], check=True)


def archive(folder: Path, rows: list[dict], images: Path) -> Path:
    """A labels_csv archive of these rows: labels.csv and links to the original images."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    with open(folder / "labels.csv", "w") as handle:
        handle.write("image_id,lesion_id,dx\n")
        for row in rows:
            handle.write(f"{row['image_id']},{row['lesion_id']},{row['dx']}\n")
            link = folder / "images" / f"{row['image_id']}.jpg"
            if not link.exists():
                link.symlink_to(images / f"{row['image_id']}.jpg")
    return folder


def ingest(source: Path, output: Path, size: str, decode: list[str], split: str, seed: int) -> None:
    if not (output / "manifest.json").exists():
        submit(
            "ingest",
            "--source",
            "labels_csv",
            "--input",
            str(source),
            "--output",
            str(output),
            "--sizes",
            size,
            "--split",
            split,
            "--seed",
            str(seed),
            "--mode",
            "overwrite",
            "--links",
            "follow",
            *decode,
        )


def nested_draws(pool: list[dict], sizes: list[int], seed: int) -> dict[int, list[dict]]:
    """N pool rows for each N, stratified by class (largest remainders), each draw inside the next."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[dict]] = {}
    for row in pool:
        by_class.setdefault(row["dx"], []).append(row)
    for rows in by_class.values():
        rng.shuffle(rows)
    draws = {}
    for size in sizes:
        shares = {name: size * len(rows) / len(pool) for name, rows in by_class.items()}
        counts = {name: int(share) for name, share in shares.items()}
        for name in sorted(shares, key=lambda name: counts[name] - shares[name])[: size - sum(counts.values())]:
            counts[name] += 1
        draws[size] = [row for name, rows in by_class.items() for row in rows[: counts[name]]]
    return draws


def figures(section: dict) -> dict:
    melanoma = section.get("melanoma") or {}
    return {
        "images": section["count"],
        "balanced_accuracy": section["balanced_accuracy"],
        "balanced_accuracy_interval": section["interval"]["balanced_accuracy"],
        "melanoma_auc": melanoma.get("auc"),
        "melanoma_auc_interval": melanoma.get("auc_interval"),
        "sensitivity": melanoma.get("sensitivity"),
        "specificity": melanoma.get("specificity"),
        "ece": section.get("ece"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", required=True, help="the HAM10000-trained bundle (folder)")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument(
        "--external",
        type=Path,
        default=Path(os.environ.get("DERMSPARK_DATA", ROOT.parent / "shared" / "data")) / "external-isic2017",
    )
    parser.add_argument("--sizes", default="50,100,200,400,all")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    manifest = json.loads((Path(args.parent) / "manifest.json").read_text())
    height, width = manifest["input_size"]
    size, pre = f"{height}x{width}", manifest["preprocessing"]
    decode = [
        "--resample",
        pre["resample"],
        "--aspect",
        pre["aspect"],
        "--color-constancy",
        pre.get("color_constancy", "none"),
    ]
    out, images = args.output.resolve(), args.external / "images"
    out.mkdir(parents=True, exist_ok=True)

    ingest(args.external, out / "halves", size, decode, "50/50", args.seed)
    table = pq.read_table(out / "halves" / f"images_{size}", columns=["image_id", "lesion_id", "label", "split"])
    classes = json.loads((out / "halves" / "manifest.json").read_text())["classes"]
    rows = [
        {"image_id": i, "lesion_id": lesion or i, "dx": classes[label], "split": split}
        for i, lesion, label, split in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
    ]
    pool = sorted((row for row in rows if row["split"] == "train"), key=lambda row: row["image_id"])
    test = [row for row in rows if row["split"] == "test"]
    ingest(archive(out / "test-half", test, images), out / "test-half-dataset", size, decode, "80/10/10", args.seed)
    sizes = [len(pool) if part == "all" else int(part) for part in args.sizes.split(",")]

    results = {}
    scores = out / "parent-scores"
    if not (scores / "runs").exists():
        submit(
            "score",
            "--model",
            args.parent,
            "--input",
            str(out / "test-half" / "images"),
            "--output",
            str(scores),
            "--labels",
            str(out / "test-half" / "labels.csv"),
        )
    [run] = (scores / "runs").iterdir()
    results[0] = figures(json.loads((run / "metrics.json").read_text())["labeled"])
    flags = os.environ.get("TRAIN_FLAGS", "").split() or FLAGS
    for count, drawn in nested_draws(pool, sizes, args.seed).items():
        tuned = out / f"tuned-{count}"
        if not (tuned / "metrics.json").exists():
            ingest(
                archive(out / f"pool-{count}", drawn, images),
                out / f"pool-{count}-dataset",
                size,
                decode,
                "70/15/15",
                args.seed,
            )
            submit(
                "train",
                "--dataset",
                str(out / f"pool-{count}-dataset"),
                "--model",
                manifest["model_name"],
                "--init-from",
                args.parent,
                "--external",
                str(out / "test-half-dataset"),
                "--output",
                str(tuned),
                "--mode",
                "overwrite",
                "--seed",
                str(args.seed),
                "--tta",
                manifest["test_time_augmentation"],
                "--model-options",
                json.dumps(manifest["training_settings"]["model_options"]),
                *flags,
            )
        results[count] = figures(json.loads((tuned / "metrics.json").read_text())["external"]["test-half-dataset"])
    (out / "curve.json").write_text(json.dumps({"pool": len(pool), "test": len(test), "curve": results}, indent=2))
    lines = [
        "| local images | balanced accuracy (95% interval) | melanoma AUC (95% interval) | "
        "sensitivity / specificity | ECE |",
        "|---|---|---|---|---|",
    ]
    for count, found in results.items():
        low, high = found["balanced_accuracy_interval"]
        auc = found["melanoma_auc_interval"] or [float("nan")] * 2
        lines.append(
            f"| {count} | {found['balanced_accuracy']:.3f} ({low:.3f} to {high:.3f}) | "
            f"{found['melanoma_auc']:.3f} ({auc[0]:.3f} to {auc[1]:.3f}) | "
            f"{found['sensitivity']:.3f} / {found['specificity']:.3f} | {found['ece']:.3f} |"
        )
    (out / "curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
