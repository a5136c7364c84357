"""Runs summed into periods, per model version: each run, each day and each ISO week, with the
figures a person reads (volume, errors, class mix, confidence quantiles, melanoma flag and review
rates) and, given the bundle's reference, their drift from its held-out predictions."""

from datetime import date

import numpy as np

from dermspark.monitor.aggregate import RunCounts
from dermspark.report import drift

GRAINS = ("run", "day", "week")


def period_of(record: RunCounts, grain: str) -> str:
    if grain == "run":
        return record.run_id
    if grain == "day":
        return record.scoring_date
    year, week, _ = date.fromisoformat(record.scoring_date).isocalendar()
    return f"{year}-W{week:02d}"


def _sum_counts(dicts) -> dict:
    total: dict = {}
    for counts in dicts:
        for name, count in (counts or {}).items():
            total[name] = total.get(name, 0) + count
    return dict(sorted(total.items()))


def combine(records: list[RunCounts]) -> dict:
    """Several runs' counts as one."""
    reviews = [record.review for record in records if record.review is not None]
    return {
        "runs": len(records),
        "start": min((record.started for record in records if record.started), default=None),
        "rows": sum(record.rows for record in records),
        "scored": sum(record.scored for record in records),
        "errors": _sum_counts(record.errors for record in records),
        "class_counts": _sum_counts(record.class_counts for record in records),
        "confidence_histogram": np.sum([record.confidence_histogram for record in records], axis=0).tolist(),
        "melanoma_flags": sum(record.melanoma_flags for record in records),
        "review": {
            "flagged": sum(review["flagged"] for review in reviews),
            "by_reason": _sum_counts(review["by_reason"] for review in reviews),
        }
        if reviews
        else None,
    }


def figures(counts: dict, reference: dict | None) -> dict:
    """What the report shows of a period's counts."""
    scored = counts["scored"]

    def rate(count: int) -> float | None:
        return round(count / scored, 4) if scored else None

    review = counts["review"]
    return {
        "runs": counts["runs"],
        "start": counts["start"],
        "rows": counts["rows"],
        "scored": scored,
        "errors": sum(counts["errors"].values()),
        "errors_by_reason": counts["errors"],
        "class_mix": {name: rate(count) for name, count in counts["class_counts"].items()},
        "confidence": drift.quantiles(counts["confidence_histogram"]),
        "melanoma_flag_rate": rate(counts["melanoma_flags"]),
        "review_rate": None if review is None else rate(review["flagged"]),
        "review_rate_by_reason": None
        if review is None
        else {reason: rate(count) for reason, count in review["by_reason"].items()},
        "drift": None
        if reference is None
        else drift.compare(reference, counts["class_counts"], counts["confidence_histogram"]),
    }


def periods(records: list[RunCounts], grain: str, references: dict[str, dict]) -> list[dict]:
    """One entry per model version and period, in time order; references: the reference to
    compare each model version with (absent: not compared)."""
    grouped: dict[tuple[str, str], list[RunCounts]] = {}
    for record in records:
        grouped.setdefault((record.model_version, period_of(record, grain)), []).append(record)
    entries = []
    for (version, period), members in grouped.items():
        counts = combine(members)
        inputs = sorted({member.input for member in members if member.input})
        entries.append(
            {"model_version": version, "period": period, "inputs": inputs, **figures(counts, references.get(version))}
        )
    return sorted(entries, key=lambda entry: (entry["start"] or "", entry["period"]))
