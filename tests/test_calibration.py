"""Temperature scaling, expected calibration error and the melanoma operating point, on
hand-made cases whose answers are worked out here."""

import math

import numpy as np
import pytest
from dermspark.report.calibration import (
    apply_temperature,
    calibrate,
    choose_temperature,
    choose_threshold,
    fit_temperature,
    reliability,
    sensitivity_specificity,
)


def test_the_fitted_temperature_is_the_known_optimum():
    # Every image scores logits (2, 0), and 3 in 4 are class 0: the NLL is least where
    # sigmoid(2 / T) = 3/4, so T = 2 / ln 3.
    probabilities = np.tile(np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum(), (40, 1))
    labels = np.array([0, 0, 0, 1] * 10)
    assert fit_temperature(probabilities, labels) == pytest.approx(2 / math.log(3), abs=1e-3)


def test_a_temperature_moves_probabilities_and_never_a_class():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(7), size=500)
    for temperature in (0.3, 1.0, 2.5):
        scaled = apply_temperature(probabilities, temperature)
        assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()
        assert scaled.sum(axis=1) == pytest.approx(np.ones(500))
    assert apply_temperature(probabilities, 1.0) == pytest.approx(probabilities)
    assert apply_temperature(probabilities, 2.5).max(axis=1).mean() < probabilities.max(axis=1).mean()
    with pytest.raises(ValueError, match="above 0"):
        apply_temperature(probabilities, 0.0)


def test_ece_of_a_hand_made_case():
    # Confidence 0.9 twice (one right): bin (0.867, 0.933], accuracy 0.5, gap 0.4, half the images.
    # Confidence 0.65 twice (both right): bin (0.6, 0.667], accuracy 1, gap 0.35, half the images.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.35, 0.65], [0.65, 0.35]])
    labels = np.array([0, 1, 1, 0])
    found = reliability(probabilities, labels)
    assert found["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.35)
    assert found["bins"] == 15 and sum(found["count"]) == 4
    assert found["count"][13] == 2 and found["accuracy"][13] == 0.5 and found["confidence"][9] == 0.65


def test_the_threshold_is_the_largest_that_reaches_the_target_sensitivity():
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.95, 0.5, 0.1])
    positive = np.array([True, True, True, True, False, False, False])
    # 3 of 4 positives are needed for 0.75: the third highest positive score.
    threshold = choose_threshold(scores, positive, 0.75)
    assert threshold == 0.3
    assert sensitivity_specificity(scores, positive, threshold)["sensitivity"] >= 0.75
    assert sensitivity_specificity(scores, positive, np.nextafter(threshold, 1.0))["sensitivity"] < 0.75
    assert choose_threshold(scores, positive, 1.0) == 0.2
    assert choose_threshold(scores, np.zeros(7, dtype=bool), 0.9) is None
    assert sensitivity_specificity(scores, positive, 0.3) == {
        "sensitivity": 0.75,
        "specificity": 1 / 3,
        "positives": 4,
        "negatives": 3,
    }


def test_calibrate_reports_before_and_after_and_the_operating_point():
    rng = np.random.default_rng(1)

    def split(size):
        labels = rng.integers(0, 3, size)
        # Overconfident: the right class gets most of the mass, but a quarter are wrong.
        wrong = rng.random(size) < 0.25
        predicted = np.where(wrong, (labels + 1) % 3, labels)
        probabilities = np.full((size, 3), 0.02)
        probabilities[np.arange(size), predicted] = 0.96
        return probabilities, labels, np.arange(size)

    validation, test = split(300), split(300)
    result = calibrate(validation, test, melanoma=2, target=0.9)
    assert result["temperature"] > 1.0  # overconfidence is cooled
    for name in ("validation", "test"):
        assert result["reliability"][name]["after"]["ece"] < result["reliability"][name]["before"]["ece"]
    point = result["operating_point"]
    assert point["validation"]["sensitivity"] >= 0.9
    low, high = point["test"]["interval"]["sensitivity"]
    assert low <= point["test"]["sensitivity"] <= high
    assert set(point["threshold"]) == {"temperature", "none"} and point["roc"]["fpr"][0] == 0.0
    assert calibrate(None, test, melanoma=2, target=0.9)["operating_point"] is None


def test_auto_keeps_the_models_own_probabilities_when_the_temperature_raises_ece():
    """Nine in ten right at 0.9 (underconfident) and one in ten wrong at 0.999: log loss asks
    for a temperature above 1, which makes the calibration error worse."""
    size = 400
    labels = np.zeros(size, dtype=int)
    probabilities = np.tile([0.9, 0.05, 0.05], (size, 1))
    wrong = np.arange(size) % 10 == 0
    probabilities[wrong] = [0.0005, 0.999, 0.0005]
    validation = (probabilities, labels, np.arange(size))
    auto = choose_temperature(validation, "auto")
    assert auto["fitted_temperature"] > 1.0 and (auto["temperature"], auto["chosen"]) == (1.0, "none")
    assert "raised the validation split's ECE" in auto["note"] and "kept the model's own" in auto["note"]
    forced = choose_temperature(validation, "temperature")
    assert forced["temperature"] == auto["fitted_temperature"] and "applies it all the same" in forced["note"]
    assert choose_temperature(validation, "none")["temperature"] == 1.0
    helped = calibrate(
        *[(np.tile([0.96, 0.02, 0.02], (size, 1)), np.where(np.arange(size) % 4 == 0, 1, 0), np.arange(size))] * 2,
        melanoma=None,
        target=0.9,
    )
    assert helped["chosen"] == "temperature" and helped["temperature"] > 1.0 and "note" not in helped
