#!/usr/bin/env bash
# The whole path on a synthetic archive: generate -> ingest -> train (Horovod, 2 processes) -> score.
# Usage: scripts/demo.sh [OUTPUT_DIR]   (default: demo-output/ in the repository, replaced each run)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(realpath -m "${1:-$root/demo-output}")"
images="${DEMO_IMAGES:-600}"
epochs="${DEMO_EPOCHS:-12}"

"$root/scripts/bootstrap.sh"
rm -rf "$work"
mkdir -p "$work"
started=$SECONDS
stage() { printf '\n[demo] %s\n' "$*"; }

stage "1/4 synthetic HAM10000 archive ($images images, 600x450 JPEGs) -> $work/archive"
"$root/.venv/bin/python" "$root/scripts/synthetic.py" --output "$work/archive" --images "$images"

stage "2/4 ingest: decode, resize to 75x100, lesion-grouped split, Petastorm -> $work/dataset"
"$root/spark-submit.sh" ingest --source ham10000 --input "$work/archive" --output "$work/dataset"

stage "3/4 train: benbrahim_cnn, Horovod on 2 Spark tasks, $epochs epochs -> $work/model"
"$root/spark-submit.sh" train --dataset "$work/dataset" --model benbrahim_cnn \
    --output "$work/model" --epochs "$epochs" --num-proc 2

stage "4/4 score: pandas UDF over every JPEG of the archive -> $work/scores"
"$root/spark-submit.sh" score --model "$work/model/model" --input "$work/archive" \
    --output "$work/scores" --glob '*.jpg'

stage "done in $((SECONDS - started)) s. Outputs:"
"$root/.venv/bin/python" - "$work" <<'PY'
import json, sys
work = sys.argv[1]
ingest = json.load(open(f"{work}/dataset/manifest.json"))
test = json.load(open(f"{work}/model/metrics.json"))["test"]
import glob
scores = json.load(open(glob.glob(f"{work}/scores/runs/*/summary.json")[0]))
print(f"  dataset     {work}/dataset  ({ingest['written']} of {ingest['inputs']} inputs written)")
print(f"  model       {work}/model/model  (bundle), {work}/model/metrics.json")
print(f"  predictions {work}/scores/predictions  ({scores['scored']} scored, {scores['errors']} errors)")
print(f"  test split: {test['count']} images of lesions never seen in training")
print(f"    accuracy           {test['accuracy']:.3f}")
low, high = test["interval"]["balanced_accuracy"]
print(f"    balanced accuracy  {test['balanced_accuracy']:.3f}  (mean per-class recall, the ISIC metric;"
      f" 95% interval {low:.3f} to {high:.3f} over the split's lesions)")
print(f"    majority baseline  {test['baseline_accuracy']:.3f}")
PY
