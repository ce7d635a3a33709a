import numpy as np
import pytest

from edge.core.metrics import auroc, binary_metrics, calibration, choose_threshold, multiclass_metrics, roc_curve


def test_auroc_matches_pair_counting_by_hand():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.8, 0.9])
    # positive-negative pairs: 9; pos 0.35 beats 0.1 only (1); 0.8 beats 0.1, 0.4, ties 0.8 (2.5); 0.9 beats all (3)
    assert auroc(y, p) == pytest.approx((1 + 2.5 + 3) / 9)


def test_binary_metrics_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.4, 0.05])
    m = binary_metrics(y, p, 0.5, ["neg", "pos"], "pos")
    # predicted positive: 0.9, 0.6 (TP) and 0.7 (FP); FN: 0.2
    assert (m["sensitivity"], m["specificity"]) == (pytest.approx(2 / 3), pytest.approx(4 / 5))
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["confusion"]["matrix"] == [[4, 1], [1, 2]]
    lo, hi = m["auroc_ci95"]
    assert 0 <= lo <= m["auroc"] <= hi <= 1


def test_threshold_reaches_target_sensitivity():
    y = np.array([1] * 10 + [0] * 10)
    p = np.r_[np.linspace(0.1, 1.0, 10), np.linspace(0.0, 0.5, 10)]
    t = choose_threshold(y, p, 0.9)
    assert np.mean(p[y == 1] >= t) >= 0.9
    assert np.mean(p[y == 1] >= t + 1e-9) < 0.9  # the highest such threshold


def test_ece_of_perfectly_calibrated_bins_is_zero_and_off_by_constant():
    conf = np.array([0.25] * 4 + [0.75] * 4)
    correct = np.array([1, 0, 0, 0, 1, 1, 1, 0], float)
    assert calibration(conf, correct)["ece"] == pytest.approx(0.0)
    assert calibration(np.full(4, 0.9), np.array([1, 1, 0, 0.0]))["ece"] == pytest.approx(0.4)


def test_multiclass_metrics_by_hand():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.1, 0.2, 0.7]])
    m = multiclass_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["recall"] == pytest.approx(0.5)
    assert m["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_roc_curve_ends_at_one_one():
    fpr, tpr, _ = roc_curve(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.6, 0.4]))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
