"""The review flag measured: the share of each split it flags, by reason, and on a set of images
known not to be dermoscopy (`train --ood-check`), each detector's AUROC against the test split.

Shares carry a Clopper-Pearson 95% interval (exact for a binomial count); AUROCs a percentile
interval over resamples of the images.
"""

import numpy as np

from dermspark.report.external import auc_interval
from dermspark.review import METHODS, REASONS


def share_interval(count: int, total: int, level: float = 0.95) -> list[float] | None:
    """Clopper-Pearson interval of a binomial share."""
    from scipy.stats import beta

    if total == 0:
        return None
    tail = (1.0 - level) / 2.0
    low = 0.0 if count == 0 else float(beta.ppf(tail, count, total - count + 1))
    high = 1.0 if count == total else float(beta.ppf(1.0 - tail, count + 1, total - count))
    return [low, high]


def flagged(reasons: np.ndarray) -> dict:
    """Images flagged and their share, with its interval, overall and by reason."""
    total = len(reasons)
    count = int(sum(reason is not None for reason in reasons))
    return {
        "images": total,
        "flagged": count,
        "share": count / total if total else None,
        "interval": share_interval(count, total),
        "by_reason": {reason: int(sum(found == reason for found in reasons)) for reason in REASONS},
    }


def detection(reviewer, splits: dict, ood=None) -> dict:
    """splits: name -> (images, features, raw probabilities, probabilities): validation, test,
    and any external dataset by its name; ood: the same for the out-of-distribution images, or
    None. The test split stands for in-distribution in the
    AUROCs: it took no part in fitting the detector or its threshold."""
    result = {
        "method": reviewer.method,
        "review_rate": reviewer.record["review_rate"],
        "threshold": reviewer.record["threshold"],
        "splits": {},
    }
    for name, (images, features, raw, probabilities) in splits.items():
        result["splits"][name] = flagged(reviewer.review(images, features, raw, probabilities)[2])
    if ood is None or "test" not in splits:
        return result
    images, features, raw, probabilities = ood
    result["ood"] = flagged(reviewer.review(images, features, raw, probabilities)[2])
    _, test_features, test_raw, _ = splits["test"]
    positive = np.concatenate([np.zeros(len(test_raw), dtype=bool), np.ones(len(raw), dtype=bool)])
    groups = np.arange(len(positive))
    result["auroc"] = {}
    for method in METHODS:
        scores = np.concatenate(
            [reviewer.scores(method, test_features, test_raw), reviewer.scores(method, features, raw)]
        )
        result["auroc"][method] = _auroc(positive, scores, groups)
    return result


def _auroc(positive: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    return {"auroc": float(roc_auc_score(positive, scores)), "interval": auc_interval(positive, scores, groups)}


def _share(found: dict) -> str:
    low, high = found["interval"] or (0.0, 0.0)
    return f"{found['share']:.1%} ({low:.1%} to {high:.1%})"


def markdown_lines(review: dict | None) -> list[str]:
    """report.md's section on the review flag."""
    if not review:
        return []
    lines = [
        "",
        "## Review flag",
        "",
        f"Detector `{review['method']}`, thresholded at {review['threshold']:.4g} to flag "
        f"{review['review_rate']:.0%} of the validation split; image checks at the training split's "
        "0.5% tails. Share of images flagged, with its 95% interval, and by the first reason that holds:",
        "",
        "| split | images | flagged (95% interval) | " + " | ".join(REASONS) + " |",
        "|---|---|---|" + "---|" * len(REASONS),
    ]
    rows = {
        name if name in ("validation", "test") else f"external {name}": found
        for name, found in review["splits"].items()
    }
    if "ood" in review:
        rows["out-of-distribution check set"] = review["ood"]
    for name, found in rows.items():
        lines.append(
            f"| {name} | {found['images']} | {_share(found)} | "
            + " | ".join(str(found["by_reason"][reason]) for reason in REASONS)
            + " |"
        )
    if "auroc" in review:
        lines += [
            "",
            "Detection AUROC, test split against the check set (95% interval over resampled images):",
            "",
            "| detector | AUROC |",
            "|---|---|",
        ]
        for method, found in review["auroc"].items():
            bounds = found["interval"]
            chosen = " (this bundle's)" if method == review["method"] else ""
            lines.append(
                f"| {method}{chosen} | {found['auroc']:.3f}"
                + (f" ({bounds[0]:.3f} to {bounds[1]:.3f})" if bounds else "")
                + " |"
            )
    return lines
