#!/usr/bin/env bash
# benbrahim_cnn on the whole real HAM10000 (10,015 images, ../shared/data/ham10000-200x150)
# through the real jobs: ingest at 75x100 with the lesion-grouped 80/10/10 split, train with
# Horovod on 2 processes, then print the test metrics. The report is OUTPUT/model/report.md.
# Usage: scripts/real_result.sh [OUTPUT_DIR]   (default: runs/real-benbrahim/, replaced each run)
# Train flags via TRAIN_FLAGS (default: balanced sampling, augmentation, a rate that is Adam's 1e-3
# once scaled by the 2 processes, as in the paper, and the epoch of best validation balanced
# accuracy; each chosen by validation balanced accuracy, never test).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${DERMSPARK_DATA:-$root/../shared/data}/ham10000-200x150"
work="$(realpath -m "${1:-$root/runs/real-benbrahim}")"
[ -f "$data/HAM10000_metadata.csv" ] || { echo "no HAM10000 archive at $data: set DERMSPARK_DATA" >&2; exit 2; }

"$root/scripts/bootstrap.sh"
rm -rf "$work"
mkdir -p "$work"
started=$SECONDS
"$root/spark-submit.sh" ingest --source ham10000 --input "$data" --output "$work/dataset" --sizes 75x100
# A variable, not a ${TRAIN_FLAGS:-...} default: the JSON's brace would end that expansion early.
default_flags='--imbalance cap,oversample --cap-per-class 1200 --learning-rate 0.0005 --model-options {"augment":true} --stage-end best --monitor val_balanced_accuracy'
# shellcheck disable=SC2086  # a list of flags
"$root/spark-submit.sh" train --dataset "$work/dataset" --model benbrahim_cnn --output "$work/model" \
    --num-proc 2 ${TRAIN_FLAGS:-$default_flags}
echo "[real] done in $((SECONDS - started)) s; report: $work/model/report.md"
