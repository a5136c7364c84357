"""Metrics on a confusion matrix worked out by hand (see the comments for the arithmetic)."""

import numpy as np
import pytest
from dermspark.report.evaluation import markdown
from dermspark.report.metrics import classification_metrics
from sklearn.metrics import balanced_accuracy_score

CLASSES = ["a", "b", "c"]
# Truth and prediction, as a confusion matrix (rows truth, columns prediction):
#   a: 3 a, 1 b          [[3, 1, 0],
#   b: 2 b, 1 c           [0, 2, 1],
#   c: 3 c                [0, 0, 3]]
LABELS = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
PREDICTED = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]


def one_hot_ish(predicted, classes=3):
    probabilities = np.full((len(predicted), classes), 0.1)
    probabilities[np.arange(len(predicted)), predicted] = 1 - 0.1 * (classes - 1)
    return probabilities


@pytest.fixture(scope="module")
def metrics():
    return classification_metrics(np.array(LABELS), one_hot_ish(PREDICTED), CLASSES, majority_label=0)


def test_counts_and_accuracies(metrics):
    assert metrics["confusion_matrix"] == [[3, 1, 0], [0, 2, 1], [0, 0, 3]]
    assert metrics["accuracy"] == pytest.approx(8 / 10)
    # Recalls 3/4, 2/3, 3/3; their mean:
    assert metrics["balanced_accuracy"] == pytest.approx((3 / 4 + 2 / 3 + 1) / 3)
    assert metrics["baseline_accuracy"] == pytest.approx(4 / 10)  # always "a"
    assert metrics["confusion_matrix_normalized"][1] == pytest.approx([0, 2 / 3, 1 / 3], abs=1e-4)


def test_per_class(metrics):
    a, b, c = (metrics["per_class"][name] for name in CLASSES)
    assert (a["precision"], b["precision"], c["precision"]) == pytest.approx((1, 2 / 3, 3 / 4))
    assert (a["recall"], b["recall"], c["recall"]) == pytest.approx((3 / 4, 2 / 3, 1))
    assert a["f1"] == pytest.approx(2 * 1 * 0.75 / 1.75)
    # Specificity: not-a images are 6, none called a; not-b are 7, one (an a) called b.
    assert (a["specificity"], b["specificity"], c["specificity"]) == pytest.approx((1, 6 / 7, 6 / 7))
    assert [a["support"], b["support"], c["support"]] == [4, 3, 3]


def test_one_vs_rest_auc(metrics):
    # Scores are 0.8 where predicted, else 0.1. For a: 4 positives x 6 negatives = 24 pairs;
    # 3 positives at 0.8 beat all 6 (18 wins), one at 0.1 ties all 6 (half of 6): 21/24.
    # For b: 21 pairs; 2 positives at 0.8 beat 6 and tie 1, one at 0.1 loses 1 and ties 6: 16/21.
    # For c: 3 positives at 0.8 beat 6 and tie 1 each: 19.5/21.
    aucs = [metrics["per_class"][name]["auc"] for name in CLASSES]
    assert aucs == pytest.approx([21 / 24, 16 / 21, 19.5 / 21])
    assert metrics["macro_auc"] == pytest.approx(np.mean([21 / 24, 16 / 21, 19.5 / 21]))


def test_absent_class_has_no_auc_and_is_left_out_of_the_mean():
    metrics = classification_metrics(np.array([0, 0, 1, 1]), one_hot_ish([0, 1, 1, 1]), CLASSES, 0)
    assert metrics["per_class"]["c"]["auc"] is None
    assert metrics["macro_auc"] == pytest.approx(np.mean([metrics["per_class"][n]["auc"] for n in "ab"]))


def test_figures_no_image_defines_are_na_and_balanced_accuracy_names_its_classes():
    # No c in the split, and c never predicted: its recall, F1 and precision mean nothing.
    metrics = classification_metrics(np.array([0, 0, 1, 1]), one_hot_ish([0, 1, 1, 1]), CLASSES, 0)
    c = metrics["per_class"]["c"]
    assert (c["recall"], c["f1"], c["precision"]) == (None, None, None) and c["specificity"] == 1.0
    assert metrics["balanced_accuracy_over"] == ["a", "b"]
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    # c predicted once though absent: its precision is defined (0), its recall is not.
    metrics = classification_metrics(np.array([0, 0, 1, 1]), one_hot_ish([0, 2, 1, 1]), CLASSES, 0)
    assert metrics["per_class"]["c"]["precision"] == 0.0 and metrics["per_class"]["c"]["recall"] is None
    text = markdown({"test": metrics}, CLASSES, "t")
    assert "| c | 0 | 0.000 | n/a | n/a |" in text
    assert "averages the recall of the 2 classes with images here (a, b)" in text


def test_binary_sensitivity_and_specificity():
    # Two melanomas (one found), three others (two cleared, one called melanoma).
    labels = np.array([0, 0, 1, 1, 1])
    metrics = classification_metrics(
        labels, one_hot_ish([0, 1, 1, 1, 0], 2), ["melanoma", "non_melanoma"], 1, positive_class="melanoma"
    )
    assert metrics["binary"]["sensitivity"] == pytest.approx(1 / 2)
    assert metrics["binary"]["specificity"] == pytest.approx(2 / 3)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="no examples"):
        classification_metrics(np.array([]), np.zeros((0, 3)), CLASSES, 0)
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(np.array([0, 1]), np.zeros((2, 2)), CLASSES, 0)


def test_report_shows_the_numbers_and_its_plots(metrics, tmp_path):
    from dermspark.report.evaluation import write_evaluation

    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    names = write_evaluation(str(tmp_path), {"test": metrics, "history": history}, CLASSES, "tiny", stage_ends=[1])
    assert names == ["confusion_matrix_test.png", "curves.png", "report.md"]
    for name in names[:2]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "report.md").read_text()
    assert "| test | 10 | 0.800 | 0.806 | 0.855 | 0.400 |" in text
    assert "| b | 3 | 0.667 | 0.667 | 0.667 | 0.857 | 0.762 |" in text


def test_bootstrap_interval_resamples_whole_lesions():
    from dermspark.report.metrics import bootstrap_interval

    # Every prediction right: every resample scores 1.
    labels = np.array([0, 0, 1, 1, 2])
    assert bootstrap_interval(labels, labels, ["a", "a", "b", "c", "d"], draws=50)["balanced_accuracy"] == [1.0, 1.0]
    # Two lesions of five images each, one all right, one all wrong (one class): a resample holds
    # 0, 5 or 10 right of 10 images, never anything between, as it would if images were drawn.
    labels, predicted = np.zeros(10, int), np.array([0] * 5 + [1] * 5)
    groups = ["right"] * 5 + ["wrong"] * 5
    result = bootstrap_interval(labels, predicted, groups, draws=400, level=0.9)
    assert result["groups"] == 2 and result["level"] == 0.9
    assert result["accuracy"] == [0.0, 1.0]  # both ends reached with chance 1/4 each
    # Against scikit-learn on an uneven split: the interval holds the point figure and is wider
    # when the same images form fewer, larger lesions.
    rng = np.random.default_rng(4)
    labels = rng.choice(4, size=600, p=[0.7, 0.2, 0.07, 0.03])
    predicted = np.where(rng.random(600) < 0.6, labels, rng.integers(0, 4, 600))
    point = balanced_accuracy_score(labels, predicted)
    fine = bootstrap_interval(labels, predicted, np.arange(600))["balanced_accuracy"]
    coarse = bootstrap_interval(labels, predicted, np.arange(600) // 20)["balanced_accuracy"]
    assert fine[0] < point < fine[1]
    assert coarse[1] - coarse[0] > fine[1] - fine[0]
    with pytest.raises(ValueError, match="one entry per image"):
        bootstrap_interval(labels, predicted, np.arange(599))


def test_groups_add_the_interval_to_the_metrics_and_the_report(tmp_path):
    from dermspark.report.evaluation import markdown

    labels = np.array([0, 0, 1, 1, 1, 0])
    probabilities = np.eye(2)[[0, 1, 1, 1, 0, 0]]
    metrics = classification_metrics(labels, probabilities, ["a", "b"], 0, groups=[1, 1, 2, 3, 4, 5])
    assert metrics["interval"]["groups"] == 5 and len(metrics["interval"]["balanced_accuracy"]) == 2
    assert "interval" not in classification_metrics(labels, probabilities, ["a", "b"], 0)
    low, high = metrics["interval"]["balanced_accuracy"]
    assert f"0.667 (95% interval {low:.3f} to {high:.3f})" in markdown({"test": metrics}, ["a", "b"], "t")
