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
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.64 + 0.49 + 0.01 + 0.09 + 0.16 + 0.0025) / 8)
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


# --- boundaries ----------------------------------------------------------------------------
def test_score_exactly_at_threshold_is_positive():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.5, 0.5, 0.9, 0.1])  # both 0.5s sit on the threshold: p >= t means positive
    m = binary_metrics(y, p, 0.5, ["neg", "pos"], "pos", ci=False)
    assert m["confusion"]["matrix"] == [[1, 1], [0, 2]]
    assert (m["sensitivity"], m["specificity"]) == (1.0, 0.5)
    above = binary_metrics(y, p, np.nextafter(0.5, 1), ["neg", "pos"], "pos", ci=False)
    assert above["confusion"]["matrix"] == [[2, 0], [1, 1]]


def test_threshold_when_ceil_and_floor_of_the_count_differ():
    # 7 positives at a target of 0.9: 6.3 positives are needed, so all 7 (6/7 = 0.857 falls short)
    pos = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3])
    y = np.r_[np.ones(7), np.zeros(5)]
    p = np.r_[pos, [0.1, 0.2, 0.25, 0.4, 0.85]]
    assert choose_threshold(y, p, 0.9) == 0.3
    # 10 positives at 0.9 (9.0 needed exactly) and at 0.7 (0.7 * 10 = 7.000000000000001 in floats)
    pos10 = np.linspace(1.0, 0.1, 10)
    y10 = np.r_[np.ones(10), np.zeros(3)]
    p10 = np.r_[pos10, [0.05, 0.5, 0.95]]
    assert choose_threshold(y10, p10, 0.9) == pytest.approx(pos10[8])
    assert choose_threshold(y10, p10, 0.7) == pytest.approx(pos10[6])
    assert choose_threshold(np.ones(7), pos, 0.9) == 0.3  # no negatives at all


def test_calibration_value_on_a_bin_edge_goes_to_the_upper_bin():
    conf = np.array([0.3, 0.3, 0.7, 1.0, 0.0])
    rows = {(r["lo"], r["hi"]): r["n"] for r in calibration(conf, np.ones(5))["bins"]}
    assert rows == {(0.3, 0.4): 2, (0.7, 0.8): 1, (0.9, 1.0): 1, (0.0, 0.1): 1}
    assert calibration(np.array([0.5, 0.5]), np.array([1.0, 0.0]), bins=2)["bins"][0]["lo"] == 0.5


def test_bootstrap_rows_agree_with_sklearn():
    from sklearn.metrics import roc_auc_score

    from edge.core.metrics import _auroc_rows

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (20, 30)).astype(bool)
    s = np.round(rng.random((20, 30)), 1)  # rounded: many ties
    want = [roc_auc_score(y[i], s[i]) for i in range(20)]
    np.testing.assert_allclose(_auroc_rows(y, s), want, rtol=0, atol=1e-12)
    assert np.isnan(_auroc_rows(np.ones((1, 4), bool), s[:1, :4]))[0]


def test_one_class_gives_nan_auroc_and_no_interval():
    m = binary_metrics(np.ones(4), np.array([0.2, 0.6, 0.7, 0.9]), 0.5, ["neg", "pos"], "pos")
    assert np.isnan(m["auroc"]) and "auroc_ci95" not in m
    # no negatives: specificity is undefined (NaN, shown "–"), not 0; precision keeps zero_division=0
    assert m["sensitivity"] == 0.75 and np.isnan(m["specificity"]) and np.isnan(m["per_class"]["neg"]["recall"])
    assert np.isnan(m["balanced_accuracy"]) and np.isnan(m["specificity_ci95"]).all()
    m = binary_metrics(np.zeros(3), np.array([0.2, 0.6, 0.7]), 0.5, ["neg", "pos"], "pos")  # no positives
    assert np.isnan(m["sensitivity"]) and np.isnan(m["recall"]) and m["specificity"] == pytest.approx(1 / 3)
    fpr, tpr, thr = roc_curve(np.ones(3), np.array([0.1, 0.5, 0.5]))
    assert len(fpr) == len(tpr) == len(thr) == 3 and thr[0] == np.inf
