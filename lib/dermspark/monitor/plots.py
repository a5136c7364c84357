"""The monitor's four PNGs, one line of periods each, per model version: volume and errors, the
predicted-class mix as stacked areas, confidence quantiles with the melanoma flag and review
rates, and drift against its thresholds; a flagged period's label is red and bold."""

import numpy as np
from matplotlib.ticker import FuncFormatter

from dermspark.report import drift
from dermspark.report.plots import pyplot, save
from dermspark.storage import join

FILES = {"volume": "volume.png", "mix": "class_mix.png", "confidence": "confidence.png", "drift": "drift.png"}


def _axes(entries: list[dict], rows: int, title: str):
    """A figure of `rows` panels sharing an x axis of the periods, labelled when they are few."""
    plt = pyplot()
    figure, axes = plt.subplots(
        rows, 1, figsize=(max(7.0, min(16.0, 0.35 * len(entries) + 5)), 2.8 * rows + 0.6), sharex=True, squeeze=False
    )
    axes = axes[:, 0]
    axes[0].set_title(title)
    x = np.arange(len(entries))
    labels = [_label(entry) if len(entries) <= 40 else "" for entry in entries]
    axes[-1].set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    axes[-1].set_xlim(-0.5, len(entries) - 0.5)
    # A flagged period's label in red, on every plot: the stacked areas would hide a shading.
    for label, entry in zip(axes[-1].get_xticklabels(), entries, strict=True):
        if (entry.get("drift") or {}).get("flagged"):
            label.set_color("tab:red")
            label.set_fontweight("bold")
    return figure, axes, x


def _label(entry: dict) -> str:
    """A run by what it scored (its input folder), other periods by their name."""
    if entry["runs"] == 1 and entry.get("inputs"):
        return entry["inputs"][0][:28]
    return entry["period"]


def _shade_flagged(axis, entries, x) -> None:
    for position, entry in zip(x, entries, strict=True):
        if (entry.get("drift") or {}).get("flagged"):
            axis.axvspan(position - 0.5, position + 0.5, color="tab:red", alpha=0.12, lw=0)


def draw(entries: list[dict], version: str, grain: str, folder: str) -> dict[str, str]:
    """The PNGs of one model version's periods under folder; returns {plot: file name}."""
    title = f"{version}: by {grain}"
    _draw_volume(entries, title, folder)
    _draw_mix(entries, title, folder)
    _draw_confidence(entries, title, folder)
    written = {name: FILES[name] for name in ("volume", "mix", "confidence")}
    if any(entry["drift"] for entry in entries):
        _draw_drift(entries, title, folder)
        written["drift"] = FILES["drift"]
    return written


def _draw_volume(entries: list[dict], title: str, folder: str) -> None:
    figure, axes, x = _axes(entries, 2, f"{title}: volume")
    axes[0].bar(x, [entry["scored"] for entry in entries], color="tab:blue", label="scored")
    axes[0].bar(
        x,
        [entry["errors"] for entry in entries],
        bottom=[entry["scored"] for entry in entries],
        color="tab:gray",
        label="errors",
    )
    axes[0].set_ylabel("rows")
    axes[0].legend(fontsize=8)
    rates = [entry["errors"] / entry["rows"] if entry["rows"] else 0 for entry in entries]
    axes[1].plot(x, rates, "o-", color="tab:gray")
    axes[1].set_ylim(0, max(0.05, 1.15 * max(rates, default=0)))
    axes[1].set_ylabel("error rate")
    save(figure, join(folder, FILES["volume"]))


def _draw_mix(entries: list[dict], title: str, folder: str) -> None:
    classes = sorted({name for entry in entries for name in entry["class_mix"]})
    figure, axes, x = _axes(entries, 1, f"{title}: predicted-class mix")
    shares = np.array([[entry["class_mix"].get(name) or 0 for entry in entries] for name in classes])
    axes[0].stackplot(x, shares, labels=classes, alpha=0.85)
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("share of predictions")
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save(figure, join(folder, FILES["mix"]))


def _draw_confidence(entries: list[dict], title: str, folder: str) -> None:
    figure, axes, x = _axes(entries, 2, f"{title}: confidence and flags")
    quantile = {name: [entry["confidence"][name] for entry in entries] for name in entries[0]["confidence"]}
    axes[0].fill_between(x, _floats(quantile["p05"]), _floats(quantile["p95"]), alpha=0.2, label="5th to 95th")
    axes[0].fill_between(x, _floats(quantile["p25"]), _floats(quantile["p75"]), alpha=0.35, label="25th to 75th")
    axes[0].plot(x, _floats(quantile["p50"]), "o-", label="median")
    axes[0].set_ylim(0, 1.02)
    axes[0].set_ylabel("confidence")
    axes[0].legend(fontsize=8)
    axes[1].plot(x, _floats([entry["melanoma_flag_rate"] for entry in entries]), "o-", label="melanoma flag")
    if any(entry["review_rate"] is not None for entry in entries):
        axes[1].plot(x, _floats([entry["review_rate"] for entry in entries]), "s-", label="review flag")
    axes[1].set_ylabel("rate")
    axes[1].legend(fontsize=8)
    save(figure, join(folder, FILES["confidence"]))


def _draw_drift(entries: list[dict], title: str, folder: str) -> None:
    figure, axes, x = _axes(entries, 2, f"{title}: drift from the bundle's held-out predictions")
    for axis, measure, threshold in ((axes[0], "psi", drift.PSI_SHIFT), (axes[1], "js", drift.JS_SHIFT)):
        for what, marker in (("class_mix", "o-"), ("confidence", "s-")):
            values = _floats([(entry["drift"] or {}).get(f"{measure}_{what}") for entry in entries])
            axis.plot(
                x, np.maximum(values, 0.005) if measure == "psi" else values, marker, label=what.replace("_", " ")
            )
        axis.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"shift ({threshold})")
        if measure == "psi":
            axis.axhline(drift.PSI_WATCH, color="tab:orange", ls=":", lw=1, label=f"watch ({drift.PSI_WATCH})")
        _shade_flagged(axis, entries, x)
        if measure == "psi":
            # A shift's PSI can be a hundred times the threshold: a log scale keeps both readable.
            axis.set_yscale("log")
            axis.set_ylim(bottom=0.005)
            axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_ylabel("PSI" if measure == "psi" else "Jensen-Shannon distance")
        axis.legend(fontsize=8)
    save(figure, join(folder, FILES["drift"]))


def _floats(values) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)
