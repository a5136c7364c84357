"""The review flag's parts without Spark: image checks, detectors, thresholds, reasons in order,
and the stored form. Features here are drawn, not a model's: the model's own are tested
through the pipeline's bundle (test_review_flag.py)."""

import numpy as np
import pytest
from dermspark import review
from dermspark.images import decode_image
from dermspark.ood_set import KINDS, make_ood_set
from dermspark.synthetic import make_synthetic_ham10000

SIZE = (75, 100)


def _decoded(folder) -> np.ndarray:
    return np.stack(
        [
            decode_image(path.read_bytes(), *SIZE)
            for path in sorted(folder.rglob("*.*"))
            if path.suffix in (".jpg", ".png")
        ]
    )


@pytest.fixture(scope="module")
def lesions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lesions")
    make_synthetic_ham10000(str(folder), images=120, seed=3)
    return _decoded(folder)


@pytest.fixture(scope="module")
def ood(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ood")
    made = make_ood_set(str(folder), per_kind=4, seed=1)
    assert made.counts == dict.fromkeys(KINDS, 4)
    return _decoded(folder)


def _split(images, rng, centre=0.0):
    labels = np.arange(len(images)) % 3
    features = rng.normal(size=(len(images), 16)) + centre + labels[:, None] * 2.0
    kernel = np.eye(16, 3)
    raw = np.exp(features @ kernel)
    return review.Split(images, features, (raw / raw.sum(axis=1, keepdims=True)).astype(np.float32), labels)


def test_thresholds_come_from_the_data_and_flag_the_chosen_share(lesions):
    rng = np.random.default_rng(0)
    train, valid = _split(lesions[:80], rng), _split(lesions[80:120], rng)
    reviewer = review.fit("mahalanobis", 0.1, np.eye(16, 3), np.zeros(3), train, valid)
    scores = reviewer.ood_score(valid.features, valid.probabilities)
    # The (1 - rate) quantile of validation's own scores: a tenth of 40 lies above it.
    assert int((scores > reviewer.record["threshold"]).sum()) == 4
    for name, check in reviewer.record["checks"].items():
        measure, reason, side = review.CHECKS[name]
        assert (check["measure"], check["reason"], check["side"]) == (measure, reason, side)
    # Each check flags at most its tail of the training images it was fitted on (the quantile is
    # interpolated: one image more on a small split), and the two not_dermoscopy checks flag some.
    failed = reviewer.check_failures(train.images)
    per_check = int(review.CHECK_TAIL * (len(train.images) - 1)) + 1
    assert 1 <= failed["not_dermoscopy"].sum() <= 2 * per_check
    assert failed["poor_quality"].sum() <= 3 * per_check


def test_reasons_are_given_in_order_and_features_far_away_are_out_of_distribution(lesions, ood):
    rng = np.random.default_rng(1)
    reviewer = review.fit(
        "mahalanobis", 0.05, np.eye(16, 3), np.zeros(3), _split(lesions[:80], rng), _split(lesions[80:], rng)
    )
    near, far = _split(lesions[80:], rng), _split(lesions[80:], rng, centre=25.0)
    _, flags, reasons = reviewer.review(far.images, far.features, far.probabilities, far.probabilities)
    assert flags.all() and set(reasons) <= {"out_of_distribution", "not_dermoscopy", "poor_quality"}
    assert (reasons == "out_of_distribution").mean() > 0.9
    # Images that are not dermoscopy, with lesion-like features: the image checks alone.
    other = _split(ood[: len(near.features)], rng)
    _, flags, reasons = reviewer.review(
        other.images,
        near.features[: len(other.images)],
        near.probabilities[: len(other.images)],
        near.probabilities[: len(other.images)],
    )
    assert np.mean([reason == "not_dermoscopy" for reason in reasons]) > 0.5
    # not_dermoscopy before out_of_distribution: a grey image with far features.
    grey = np.repeat(lesions[:1].mean(axis=3, keepdims=True), 3, axis=3).astype(np.uint8)
    _, _, reasons = reviewer.review(grey, far.features[:1], far.probabilities[:1], far.probabilities[:1])
    assert list(reasons) == ["not_dermoscopy"]
    # uncertain only when asked for, and last.
    _, _, reasons = reviewer.review(
        lesions[80:81],
        near.features[:1] * 0 + reviewer.arrays["means"][0],
        near.probabilities[:1],
        np.full((1, 3), 1 / 3),
        confidence=0.5,
    )
    assert list(reasons) in (["uncertain"], ["poor_quality"])


def test_each_detector_ranks_far_features_above_near_ones(lesions):
    rng = np.random.default_rng(2)
    train, near = _split(lesions[:80], rng), _split(lesions[80:], rng)
    far = _split(lesions[80:], rng, centre=10.0)
    reviewer = review.fit("energy", 0.05, np.eye(16, 3), np.zeros(3), train, near)
    assert (
        reviewer.scores("mahalanobis", far.features, far.probabilities).min()
        > reviewer.scores("mahalanobis", near.features, near.probabilities).max()
    )
    # Energy is low (more negative) where a logit is large: far along the logits is more confident.
    assert (
        reviewer.scores("energy", far.features, far.probabilities).mean()
        < reviewer.scores("energy", near.features, near.probabilities).mean()
    )
    assert set(reviewer.record["thresholds"]) == set(review.METHODS)
    with pytest.raises(ValueError, match="review method must be one of"):
        review.fit("knn", 0.05, np.eye(16, 3), np.zeros(3), train, near)


def test_the_stored_form_gives_the_same_flags(lesions, ood):
    rng = np.random.default_rng(3)
    reviewer = review.fit(
        "mahalanobis", 0.05, np.eye(16, 3), np.zeros(3), _split(lesions[:80], rng), _split(lesions[80:], rng)
    )
    again = review.Reviewer.from_npz(reviewer.record, reviewer.to_npz())
    test = _split(np.concatenate([lesions[80:], ood]), rng)
    first = reviewer.review(test.images, test.features, test.probabilities, test.probabilities)
    second = again.review(test.images, test.features, test.probabilities, test.probabilities)
    np.testing.assert_allclose(first[0], second[0], rtol=1e-5)
    assert list(first[2]) == list(second[2])
