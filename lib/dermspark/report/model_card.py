"""MODEL_CARD.md, one page per bundle, made from what training measured (the bundle's manifest and
the run's metrics), never written by hand: what the model is for and not for, what it was
trained on and what that data lacks, its held-out figures with intervals, other sources' when
measured, subgroups, calibration, the melanoma operating point, the review flag, limitations.
A cross-validation's folds get the summary of all folds as well."""

from dermspark.labels import display_name
from dermspark.manifests import BundleManifest
from dermspark.report.evaluation import fmt
from dermspark.report.review import markdown_lines as review_lines
from dermspark.report.subgroups import markdown_lines as subgroup_lines

INTENDED = [
    "Decision support for clinicians reading **dermoscopic** images of skin lesions, of the classes "
    "below, in batch (a hospital's archive) or one at a time (the service).",
    "Ranking which lesions a dermatologist should look at first; flagging possible melanoma for review.",
]
NOT_INTENDED = [
    "**Not a diagnosis.** A prediction is not a histopathology result and must not decide treatment alone.",
    "Not for clinical (non-dermoscopic) photographs, other modalities, or images the review flag marks "
    "`not_dermoscopy` or `out_of_distribution`.",
    "Not for lesion types outside its classes (an unknown type is still given one of them).",
    "Not for populations or devices unlike its training data without measuring it there first "
    "(docs/results.md: models trained on HAM10000 alone are near chance on other clinics' images).",
]


def _interval(section: dict) -> str:
    bounds = (section.get("interval") or {}).get("balanced_accuracy")
    return f" ({bounds[0]:.3f} to {bounds[1]:.3f})" if bounds else ""


def _data_lines(manifest: BundleManifest) -> list[str]:
    dataset = manifest.dataset
    per_split = dataset.get("per_split") or {}
    lines = [
        "",
        "## Training data",
        "",
        f"Dataset `{dataset.get('root', dataset.get('url', 'unknown'))}`, split by lesion (no lesion in two splits).",
        "",
        "| class | " + " | ".join(per_split) + " |",
        "|---|" + "---|" * len(per_split),
    ]
    for name in manifest.classes:
        lines.append(
            f"| {name} ({display_name(name)}) | "
            + " | ".join(str(counts.get(name, 0)) for counts in per_split.values())
            + " |"
        )
    lines += [
        "",
        "Known gaps: the data records no skin type (Fitzpatrick), so nothing can be said per skin type; "
        "its images come from the one archive it was ingested from (HAM10000's: two sites, Vienna and "
        "Queensland), so other devices, populations and acquisition habits are not represented; the "
        "classes are imbalanced (see the counts).",
    ]
    return lines


def _figures_lines(metrics: dict, cv: dict | None) -> list[str]:
    lines = [
        "",
        "## Held-out figures",
        "",
        "| split | images | accuracy | balanced accuracy (95% interval) | macro AUC | majority baseline |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("validation", "test"):
        if name in metrics:
            section = metrics[name]
            lines.append(
                f"| {name} | {section['count']} | {fmt(section['accuracy'])} | "
                f"{fmt(section['balanced_accuracy'])}{_interval(section)} | {fmt(section['macro_auc'])} | "
                f"{fmt(section['baseline_accuracy'])} |"
            )
    if cv:
        ba, auc = cv["balanced_accuracy"], cv["macro_auc"]
        lines += [
            "",
            f"Cross-validation over {cv['folds']} folds (this bundle is one of them): balanced accuracy "
            f"{fmt(ba['mean'])} ± {fmt(ba['sd'])}, macro AUC {fmt(auc['mean'])} ± {fmt(auc['sd'])}.",
        ]
    external = metrics.get("external") or {}
    lines += ["", "## Other sources", ""]
    if not external:
        lines.append(
            "No external evaluation was run (train --external): how this model does on images from "
            "other clinics is **unknown**."
        )
    for name, section in external.items():
        melanoma = section.get("melanoma") or {}
        lines.append(
            f"- `{name}`: {section['count']} images, balanced accuracy {fmt(section['balanced_accuracy'])}"
            f"{_interval(section)}, melanoma AUC {fmt(melanoma.get('auc'))}, sensitivity "
            f"{fmt(melanoma.get('sensitivity'))} and specificity {fmt(melanoma.get('specificity'))} at this "
            f"bundle's threshold, ECE {fmt(section.get('ece'))}."
        )
    return lines


def _calibration_lines(manifest: BundleManifest, metrics: dict) -> list[str]:
    calibration = metrics.get("calibration") or {}
    fitted = manifest.calibration or {}
    test = (calibration.get("reliability") or {}).get("test") or {}
    lines = [
        "",
        "## Calibration and operating point",
        "",
        f"Temperature {fitted['temperature']:.4g} (fitted on "
        f"{fitted.get('fitted_on')}); test ECE {fmt((test.get('before') or {}).get('ece'))} "
        f"before, {fmt((test.get('after') or {}).get('ece'))} after.",
    ]
    point = metrics.get("operating_point")
    if point and point.get("test"):
        found = point["test"]
        lines.append(
            f"Melanoma flag at probability {point['threshold']['temperature']:.4g}, chosen on validation "
            f"for {point['target_sensitivity']:.0%} sensitivity: on test, sensitivity "
            f"{fmt(found['sensitivity'])}, specificity {fmt(found['specificity'])} "
            f"({found['positives']} melanomas, {found['negatives']} others)."
        )
    return lines


def model_card(manifest: BundleManifest, metrics: dict, cv: dict | None = None) -> str:
    """The card of a bundle: its manifest, the training run's metrics and, for a fold, the
    cross-validation summary."""
    lines = [
        f"# Model card: {manifest.model_name}",
        "",
        f"Trained by dermspark {manifest.library_versions.get('dermspark', '')} on "
        f"{manifest.created_at or 'an unknown date'}, run `{manifest.run_id}`; input "
        f"{manifest.input_size[0]}x{manifest.input_size[1]} RGB, test-time augmentation "
        f"`{manifest.test_time_augmentation}`; classes: "
        + ", ".join(f"{name} ({display_name(name)})" for name in manifest.classes)
        + ".",
        "",
        "## Intended use",
        "",
        *[f"- {line}" for line in INTENDED],
        "",
        "## Not intended use",
        "",
        *[f"- {line}" for line in NOT_INTENDED],
    ]
    lines += _data_lines(manifest)
    lines += _figures_lines(metrics, cv)
    if metrics.get("subgroups"):
        lines += subgroup_lines(metrics["subgroups"], "Test split by subgroup")
    lines += _calibration_lines(manifest, metrics)
    lines += review_lines(metrics.get("review")) or [
        "",
        "## Review flag",
        "",
        "This bundle has no review flag: nothing tells a user when not to trust a score.",
    ]
    lines += [
        "",
        "## Limitations",
        "",
        "- Figures are on held-out images of the training source; they say little about another clinic's.",
        "- Intervals come from resampling lesions of one test split; another split would move the figures.",
        "- Subgroups under 30 lesions are not judged; rare classes rest on few images.",
        "",
    ]
    return "\n".join(lines)
