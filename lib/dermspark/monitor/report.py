"""report.md: what a person reads of monitor.json, flagged periods first, then per model version
the table and plots at the grain that suits its number of runs."""

import re

from dermspark.report import drift

# By run while a version has this many runs or fewer, else by day; weeks once there are two.
MAX_RUN_ROWS = 30


def grain_for(runs: int) -> str:
    return "run" if runs <= MAX_RUN_ROWS else "day"


def folder_name(version: str) -> str:
    """A model version as a folder name (a registered model's is NAME/VERSION)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", version)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _mix(entry: dict) -> str:
    top = sorted(entry["class_mix"].items(), key=lambda item: -(item[1] or 0))[:3]
    return ", ".join(f"{name} {_percent(share)}" for name, share in top) or "-"


def _drift(entry: dict) -> str:
    found = entry["drift"]
    if found is None:
        return "-"
    figures = (
        f"PSI {found['psi_class_mix']:.2f}/{found['psi_confidence']:.2f}, "
        f"JS {found['js_class_mix']:.2f}/{found['js_confidence']:.2f}"
    )
    if not found["judged"]:
        return f"{figures} (too few to judge)"
    return f"**{figures}: shift**" if found["flagged"] else figures + (" (watch)" if found["watch"] else "")


def _table(entries: list[dict]) -> list[str]:
    lines = [
        "| period | input | runs | scored | errors | predicted mix (top 3) | confidence median (5th-95th) | "
        "melanoma flag | review | drift: mix/confidence |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        confidence = entry["confidence"]
        spread = (
            "-"
            if confidence["p50"] is None
            else f"{confidence['p50']:.2f} ({confidence['p05']:.2f}-{confidence['p95']:.2f})"
        )
        inputs = ", ".join(entry["inputs"][:3]) + (", ..." if len(entry["inputs"]) > 3 else "")
        lines.append(
            f"| {entry['period']} | {inputs or '-'} | {entry['runs']} | {entry['scored']} | {entry['errors']} | "
            f"{_mix(entry)} | "
            f"{spread} | {_percent(entry['melanoma_flag_rate'])} | {_percent(entry['review_rate'])} | "
            f"{_drift(entry)} |"
        )
    return lines


def write_markdown(result: dict, plots: dict) -> str:
    """result: monitor.json's content; plots: {version: {grain: {plot: relative path}}}."""
    reference = result["reference"]
    lines = [
        f"# Monitoring {result['predictions']}",
        "",
        f"{result['runs']} scoring runs ({result['new_runs']} read this time), "
        f"{len(result['model_versions'])} model version(s), written {result['written_at']}.",
        "",
    ]
    if reference is None:
        lines += ["No bundle given (--model): no drift figures.", ""]
    else:
        lines += [
            f"Reference: {reference['bundle']}'s {reference['split']} split as scoring predicts it "
            f"({reference['predictions']} predictions), compared with "
            f"{', '.join(reference['compared_versions']) or 'no model version'}."
            + (
                ""
                if reference["matched"]
                else " No run of the table was scored by this bundle: every "
                "version is compared with it, which says little."
            ),
            "",
            f"A period is flagged when PSI reaches {drift.PSI_SHIFT} or the Jensen-Shannon distance "
            f"{drift.JS_SHIFT}, of the predicted-class mix or of the confidence, and it has at least "
            f"{drift.MIN_PREDICTIONS} predictions; PSI from {drift.PSI_WATCH} is marked watch. "
            "What to do about a flag: docs/monitor.md.",
            "",
        ]
    flagged = [
        (grain, entry)
        for grain in ("run", "day", "week")
        for entry in result["periods"][grain]
        if (entry["drift"] or {}).get("flagged")
    ]
    lines += ["## Flagged periods", ""]
    if reference is None:
        lines += ["Not judged without a bundle.", ""]
    elif not flagged:
        lines += ["None.", ""]
    else:
        lines += ["| model version | by | period | scored | over its threshold |", "|---|---|---|---|---|"]
        lines += [
            f"| {entry['model_version']} | {grain} | {entry['period']} | {entry['scored']} | "
            f"{', '.join(entry['drift']['over'])} |"
            for grain, entry in flagged
        ]
        lines.append("")
    for version in result["model_versions"]:
        lines += _version_section(result, version, plots.get(version, {}))
    return "\n".join(lines) + "\n"


def _version_section(result: dict, version: str, plots: dict) -> list[str]:
    runs = [entry for entry in result["periods"]["run"] if entry["model_version"] == version]
    grain = grain_for(len(runs))
    entries = [entry for entry in result["periods"][grain] if entry["model_version"] == version]
    lines = [f"## {version}", "", f"By {grain}:", "", *_table(entries), ""]
    weeks = [entry for entry in result["periods"]["week"] if entry["model_version"] == version]
    if len(weeks) > 1:
        lines += ["By week:", "", *_table(weeks), ""]
    lines += [f"![{name}]({path})" for name, path in plots.get(grain, {}).items()]
    return [*lines, ""]
