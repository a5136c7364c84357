#!/usr/bin/env bash
# A model on the whole real HAM10000 (10,015 images, ../shared/data/ham10000-200x150) through the
# real jobs: ingest at the model's size with the lesion-grouped 80/10/10 split (or folds), train
# with Horovod on 2 processes, print the test metrics, and measure every model on the external
# ISIC 2017 set (other clinics; never trained on) and its review flag on images that are not
# dermoscopy (scripts/ood_set.py). The report is OUTPUT/model/report.md.
# Usage: scripts/real_result.sh [--model NAME] [--cv K [--resume]] [--seed S] [OUTPUT_DIR]
#   --model: scratch_resnet_144 (default: the recipe built for other clinics' images, with its own
#   defaults) or benbrahim_cnn (the paper's model, with the flags chosen for it: below).
#   (default OUTPUT_DIR: runs/real-MODEL/, replaced each run)
#   --cv K: ingest with --folds K and train K models (train --cv K); the summary is
#   OUTPUT/model/cv_report.md. --resume: keep OUTPUT_DIR and continue its cross-validation at
#   the first unfinished fold.
#   --seed S: seed of the split or folds and of training (default 42; docs/results.md reports 42 and 1);
#   another seed repeats the cross-validation over other folds.
# Train flags via TRAIN_FLAGS. benbrahim_cnn's default: balanced sampling, augmentation, a rate that
# is Adam's 1e-3 once scaled by the 2 processes, as in the paper, the epoch of best validation
# balanced accuracy, and predictions averaged over each image's four flips; each chosen by
# validation balanced accuracy, never test (docs/results.md). scratch_resnet_144: its recipe's.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model=scratch_resnet_144
folds=0
resume=0
seed=42
usage="usage: scripts/real_result.sh [--model scratch_resnet_144|benbrahim_cnn] [--cv K [--resume]] [--seed S] [OUTPUT_DIR]"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model="${2:?--model needs a name}"; shift 2 ;;
        --cv) folds="${2:?--cv needs the number of folds}"; shift 2 ;;
        --resume) resume=1; shift ;;
        --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
        -*) echo "unknown option $1; $usage" >&2; exit 2 ;;
        *) break ;;
    esac
done
case "$model" in
    # A variable, not a ${TRAIN_FLAGS:-...} default: the JSON's brace would end that expansion early.
    benbrahim_cnn) size=75x100; decode=()
        default_flags='--imbalance cap,oversample --cap-per-class 1200 --learning-rate 0.0005 --model-options {"augment":true} --stage-end best --monitor val_balanced_accuracy --tta flips' ;;
    scratch_resnet_144) size=144x144; decode=(); default_flags='' ;;
    *) echo "unknown --model $model; $usage" >&2; exit 2 ;;
esac
data="${DERMSPARK_DATA:-$root/../shared/data}/ham10000-200x150"
# Other clinics' dermoscopy (ISIC 2017): every model is also measured on it, never trained on it.
external="${DERMSPARK_DATA:-$root/../shared/data}/external-isic2017"
work="$(realpath -m "${1:-$root/runs/real-$model}")"
[ -f "$data/HAM10000_metadata.csv" ] || { echo "no HAM10000 archive at $data: set DERMSPARK_DATA" >&2; exit 2; }
[ -f "$external/labels.csv" ] || { echo "no external set at $external: set DERMSPARK_DATA" >&2; exit 2; }
[ "$resume" = 0 ] || [ "$folds" -gt 0 ] || { echo "--resume continues a cross-validation: give --cv K" >&2; exit 2; }

"$root/scripts/bootstrap.sh"
started=$SECONDS
if [ "$resume" = 0 ]; then
    rm -rf "$work"
    mkdir -p "$work"
    "$root/spark-submit.sh" ingest --source ham10000 --input "$data" --output "$work/dataset" --sizes "$size" \
        --folds "$folds" --seed "$seed" "${decode[@]}"
    "$root/spark-submit.sh" ingest --source labels_csv --input "$external" --output "$work/isic2017" --sizes "$size" \
        "${decode[@]}"
fi
# Images that are not dermoscopy (scripts/ood_set.py): the report gives the share the review flag
# catches and each detector's AUROC. Made again when missing, the same images for the same seed.
[ -d "$work/ood" ] || "$root/.venv/bin/python" "$root/scripts/ood_set.py" --output "$work/ood" --per-kind 50
cv_flags=()
[ "$folds" = 0 ] || cv_flags=(--cv "$folds" --run-id real-cv)
# shellcheck disable=SC2086  # a list of flags
"$root/spark-submit.sh" train --dataset "$work/dataset" --model "$model" --output "$work/model" \
    --num-proc 2 --seed "$seed" --external "$work/isic2017" --ood-check "$work/ood" "${cv_flags[@]}" ${TRAIN_FLAGS:-$default_flags}
report="$work/model/report.md"
[ "$folds" = 0 ] || report="$work/model/cv_report.md"
echo "[real] done in $((SECONDS - started)) s; report: $report"
