"""Metrics at their boundaries: a score equal to the threshold, positive counts where ceil and
floor of the target count differ, confidences on calibration bin edges; every figure by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.typing import ArrayLike

from edge.core.metrics import (
    auroc,
    binary_metrics,
    bootstrap_auroc_ci,
    calibration,
    choose_threshold,
    compute_metrics,
    confusion_matrix,
    multiclass_metrics,
    proportion_ci,
    roc_curve,
    subgroup_metrics,
)

LABELS = ["fractured", "not_fractured"]


def test_threshold_with_seven_positives_at_ninety_percent_is_the_lowest_positive():
    # 0.9 * 7 = 6.3: all 7 positives are needed (ceil); floor would stop at the 6th (0.4)
    pos = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    y = np.r_[np.ones(7), np.zeros(3)]
    p = np.r_[pos, [0.35, 0.2, 0.1]]
    thr = choose_threshold(y, p, 0.9)
    assert thr == 0.3
    m = binary_metrics(y, p, thr, LABELS, "fractured", ci=False)
    assert m["sensitivity"] == 1.0  # the positive scored exactly at the threshold counts (>=, not >)
    assert m["confusion"]["matrix"] == [[2, 1], [0, 7]]


def test_threshold_when_the_target_count_is_whole():
    # 10 positives at 0.9: exactly 9 needed -> the 9th highest
    pos = np.linspace(1.0, 0.1, 10)
    assert choose_threshold(np.ones(10), pos, 0.9) == pos[8]
    assert choose_threshold(np.ones(10), pos) == pos[8]  # the default target is 90 %
    assert choose_threshold(np.ones(10), pos, 1.0) == pos[9]
    assert choose_threshold(np.ones(10), pos, 0.0) == pos[0]  # at least one positive is always kept
    assert choose_threshold(np.r_[0, 0], np.r_[0.2, 0.3]) == 0.5  # no positives: the neutral threshold


def test_score_equal_to_threshold_is_positive():
    y, p = np.array([1, 0, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])
    m = binary_metrics(y, p, 0.5, LABELS, "fractured", ci=False)
    assert (m["confusion"]["matrix"], m["sensitivity"], m["specificity"]) == ([[1, 1], [0, 2]], 1.0, 0.5)


def test_negative_class_figures_are_its_own():
    # counts where NPV differs from precision (the by-hand test below has both at 3/4)
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.6, 0.3, 0.2, 0.1])  # tp 3, fn 2, fp 1, tn 3
    m = binary_metrics(y, p, 0.5, LABELS, "fractured", ci=False)
    neg, pos = m["per_class"]["not_fractured"], m["per_class"]["fractured"]
    assert (pos["precision"], pos["recall"], pos["support"]) == pytest.approx((3 / 4, 3 / 5, 5))
    assert (neg["precision"], neg["recall"], neg["support"]) == pytest.approx((3 / 5, 3 / 4, 4))
    assert neg["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35) and m["macro_f1"] == pytest.approx((pos["f1"] + neg["f1"]) / 2)


def test_binary_metrics_every_field_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.4, 0.55])
    m = binary_metrics(y, p, 0.5, LABELS, "fractured", ci=False)
    tp, fn, fp, tn = 3, 1, 1, 3
    prec, sens, spec, npv = tp / (tp + fp), tp / (tp + fn), tn / (tn + fp), tn / (tn + fn)
    assert m["n"] == 8 and m["task"] == "binary" and m["threshold"] == 0.5 and m["positive_label"] == "fractured"
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert (m["precision"], m["recall"], m["sensitivity"], m["specificity"]) == pytest.approx((prec, sens, sens, spec))
    assert m["f1"] == pytest.approx(2 * prec * sens / (prec + sens))
    assert m["balanced_accuracy"] == pytest.approx((sens + spec) / 2)
    neg = m["per_class"]["not_fractured"]
    assert (neg["precision"], neg["recall"], neg["support"]) == pytest.approx((npv, spec, 4))
    assert neg["f1"] == pytest.approx(2 * npv * spec / (npv + spec))
    assert m["per_class"]["fractured"]["support"] == 4
    assert m["macro_f1"] == pytest.approx((m["f1"] + neg["f1"]) / 2)
    assert m["confusion"] == {"labels": ["not_fractured", "fractured"], "matrix": [[tn, fp], [fn, tp]]}
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    conf = np.where(p >= 0.5, p, 1 - p)
    assert m["top1_confidence_mean"] == pytest.approx(conf.mean())
    # positive beats negative in 4 + 3 + 1 + 3 of the 16 pairs, none tied
    assert m["auroc"] == pytest.approx(11 / 16)
    assert m["ece"] == m["calibration"]["ece"] == pytest.approx(calibration(p, y.astype(float))["ece"])
    assert "auroc_ci95" not in m


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_zero_denominators_give_zero_not_nan():
    m = binary_metrics(np.array([1, 0]), np.array([0.1, 0.2]), 0.5, LABELS, "fractured", ci=False)
    assert (m["precision"], m["recall"], m["f1"], m["specificity"]) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError):  # no images is the caller's error to report, never a silent 0
        binary_metrics(np.array([], int), np.array([]), 0.5, LABELS, "fractured", ci=False)


def test_compute_metrics_maps_the_positive_label_when_it_is_second():
    labels = ["not_fractured", "fractured"]
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    y_idx = np.array([1, 1, 0, 0])
    m = compute_metrics(y_idx, probs, labels, "binary", "fractured", threshold=0.5, ci=False)
    assert m["confusion"]["matrix"] == [[1, 1], [1, 1]]  # 0.5 at 0.5 is a positive call
    assert m["auroc"] == pytest.approx(0.75)


def test_bootstrap_interval():
    y = np.array([0, 0, 0, 1, 1, 1])
    lo, hi = bootstrap_auroc_ci(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), n=50)
    assert (lo, hi) == (1.0, 1.0)
    s = np.array([0.1, 0.6, 0.3, 0.4, 0.8, 0.9, 0.2, 0.7, 0.35, 0.5, 0.45, 0.65])
    yy = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0])
    wide = bootstrap_auroc_ci(yy, s, n=200, seed=1)
    narrow = bootstrap_auroc_ci(yy, s, n=200, seed=1, level=0.5)
    assert wide[0] < narrow[0] <= auroc(yy, s) <= narrow[1] < wide[1]
    assert bootstrap_auroc_ci(yy, s, n=200, seed=1) == wide
    assert bootstrap_auroc_ci(yy, s, n=200, seed=2) != wide
    assert np.isnan(bootstrap_auroc_ci(np.ones(4), s[:4], n=20)).all()
    assert bootstrap_auroc_ci(yy, s) == bootstrap_auroc_ci(yy, s, n=1000, seed=0, level=0.95)  # the defaults
    lo0, hi0 = bootstrap_auroc_ci(yy, s, n=200, level=0.0)  # a zero-width level is the median
    assert lo0 == hi0
    # the one positive is image 0: resampling must be able to draw it
    lo1, hi1 = bootstrap_auroc_ci(np.array([1, 0, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3, 0.4]), n=50)
    assert (lo1, hi1) == (1.0, 1.0)
    m = binary_metrics(yy, s, 0.5, LABELS, "fractured", ci=True)
    assert m["auroc_ci95"] == list(bootstrap_auroc_ci(yy, s))


def test_auroc_ties_and_degenerate_inputs():
    # pairs: (0.5 vs 0.5) tie = 1/2, the other three ordered: 3.5 / 4
    assert auroc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.7, 0.2])) == 0.875
    assert auroc(np.array([1, 1, 0]), np.array([0.4, 0.4, 0.4])) == 0.5
    assert auroc(np.array([1, 0, 0, 1, 0]), np.array([0.3, 0.3, 0.3, 0.9, 0.1])) == pytest.approx((2 + 3) / 6)
    assert np.isnan(auroc(np.array([1, 1]), np.array([0.1, 0.2])))
    assert np.isnan(auroc(np.array([0, 0]), np.array([0.1, 0.2])))


def test_roc_curve_with_ties_by_hand():
    fpr, tpr, thr = roc_curve(np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.9, 0.5, 0.3, 0.1]))
    assert thr.tolist() == [np.inf, 0.9, 0.5, 0.3, 0.1]
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1])
    assert fpr.tolist() == pytest.approx([0, 0.5, 0.5, 1, 1])


def test_roc_curve_with_a_single_positive_and_a_single_negative():
    fpr, tpr, thr = roc_curve(np.array([0, 1, 0, 0]), np.array([0.2, 0.6, 0.7, 0.1]))
    assert tpr.tolist() == [0, 0, 1, 1, 1] and fpr.tolist() == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 1])
    fpr, tpr, _ = roc_curve(np.array([1, 0, 1]), np.array([0.9, 0.5, 0.3]))
    assert fpr.tolist() == [0, 0, 1, 1] and tpr.tolist() == [0, 0.5, 0.5, 1]


def test_calibration_bins_at_their_edges():
    conf = np.array([0.0, 0.1, 0.1, 0.15, 0.5, 0.95, 1.0])
    correct = np.array([0, 0, 1, 1, 1, 1, 1], dtype=float)
    cal = calibration(conf, correct)
    assert [r["n"] for r in cal["bins"]] == [1, 3, 1, 2]
    assert [r["lo"] for r in cal["bins"]] == pytest.approx([0.0, 0.1, 0.5, 0.9])
    assert [r["hi"] for r in cal["bins"]] == pytest.approx([0.1, 0.2, 0.6, 1.0])
    b1 = cal["bins"][1]
    assert (b1["confidence"], b1["accuracy"]) == pytest.approx((0.35 / 3, 2 / 3))
    want = (1 * 0.0 + 3 * abs(2 / 3 - 0.35 / 3) + 1 * 0.5 + 2 * abs(1 - 0.975)) / 7
    assert cal["ece"] == pytest.approx(want)


def test_calibration_bin_count():
    conf = np.array([0.24, 0.26, 0.74, 0.76])
    cal = calibration(conf, np.ones(4), bins=2)
    assert [(r["lo"], r["hi"], r["n"]) for r in cal["bins"]] == [(0.0, 0.5, 2), (0.5, 1.0, 2)]
    assert cal["ece"] == pytest.approx(np.mean(1 - conf))


def test_confidence_on_an_inexact_edge_goes_to_the_bin_it_starts():
    cal = calibration(np.array([0.3, 0.6, 0.7]), np.ones(3))
    assert [r["lo"] for r in cal["bins"]] == [0.3, 0.6, 0.7]


def test_multiclass_metrics_by_hand():
    labels = ["a", "b", "c", "d"]
    probs = np.array(
        [[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]]
    )
    y = np.array([0, 1, 2, 1, 3])
    m = multiclass_metrics(y, probs, labels, ci=False)
    # predictions 0, 1, 3, 0, 3
    assert m["confusion"]["matrix"] == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    a, b, c, d = (m["per_class"][k] for k in labels)
    assert (a["precision"], a["recall"], a["specificity"], a["support"]) == pytest.approx((0.5, 1.0, 3 / 4, 1))
    assert (b["precision"], b["recall"], b["specificity"]) == pytest.approx((1.0, 0.5, 1.0))
    assert (c["precision"], c["recall"], c["f1"], c["specificity"]) == pytest.approx((0.0, 0.0, 0.0, 1.0))
    assert (d["precision"], d["recall"], d["specificity"]) == pytest.approx((0.5, 1.0, 3 / 4))
    assert m["recall"] == m["sensitivity"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert m["precision"] == pytest.approx((0.5 + 1 + 0 + 0.5) / 4)
    assert m["specificity"] == pytest.approx((0.75 + 1 + 1 + 0.75) / 4)
    assert m["f1"] == pytest.approx(np.mean([v["f1"] for v in m["per_class"].values()]))
    assert a["auroc"] == pytest.approx(auroc(y == 0, probs[:, 0]))
    assert m["auroc"] == pytest.approx(np.mean([auroc(y == i, probs[:, i]) for i in range(4)]))
    # top-3: sample 2 (true c, ranks d, c, b) and sample 3 (true b, ranks a, b, c) are in; all five are
    assert m["top3_accuracy"] == 1.0
    assert m["calibration"]["ece"] == m["ece"]
    assert m["ece"] == pytest.approx(calibration(probs.max(axis=1), (probs.argmax(1) == y).astype(float))["ece"])
    assert (m["task"], m["threshold"], m["n"]) == ("multiclass", None, 5)


def test_multiclass_top3_misses_and_interval():
    probs = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.3, 0.2], [0.1, 0.6, 0.2, 0.1]])
    y = np.array([3, 0, 2, 1])
    m = multiclass_metrics(y, probs, list("abcd"))  # the interval is on by default, seed 0
    assert m["top3_accuracy"] == pytest.approx(2 / 4)
    # class a: predicted for the d image (fp) and missed on its own (fn): tn = 4 - 0 - 1 - 1 = 2
    assert m["per_class"]["a"]["specificity"] == pytest.approx(2 / 3)
    assert m["auroc_ci95"] == multiclass_metrics(y, probs, list("abcd"), ci=True, seed=0)["auroc_ci95"]
    lo, hi = m["auroc_ci95"]
    assert 0.0 <= lo <= hi <= 1.0
    assert compute_metrics(y, probs, list("abcd"), "multiclass", ci=False)["accuracy"] == pytest.approx(2 / 4)


def test_confusion_matrix_counts_repeats():
    assert confusion_matrix(np.array([0, 0, 1, 1, 1]), np.array([0, 0, 1, 0, 1]), 3).tolist() == [[2, 0, 0], [1, 2, 0], [0, 0, 0]]


def test_subgroups_at_the_minimum_size():
    y = np.array([1, 0] * 6)
    p = np.linspace(0.05, 0.95, 12)
    probs = np.c_[p, 1 - p]
    idx = np.arange(12)
    # the small group first (every group is reported), then a 0/1 mask (a metadata column) of exactly 10
    groups = {"nine": idx < 9, "ten": (idx < 10).astype(np.int64)}
    out = subgroup_metrics(y, probs, LABELS, "binary", "fractured", 0.3, groups)  # default min_n = 10
    assert out["nine"] == {"n": 9, "note": "fewer than 10 images"}
    full = compute_metrics(y[:10], probs[:10], LABELS, "binary", "fractured", 0.3, ci=False)
    assert out["ten"] == {
        k: full[k] for k in ("n", "accuracy", "precision", "recall", "f1", "auroc", "sensitivity", "specificity")
    }
    assert out["ten"]["n"] == 10
    assert subgroup_metrics(y, probs, LABELS, "binary", "fractured", 0.3, groups, min_n=9)["nine"]["n"] == 9


# --- independent references: pair counting and the documented resampling ---------------------


def _pair_auroc(y: ArrayLike, s: ArrayLike) -> np.ndarray:
    """AUROC of each row by counting positive-negative pairs (ties one half); NaN for one class."""
    y, s = np.atleast_2d(np.asarray(y, bool)), np.atleast_2d(np.asarray(s, float))
    diff = s[:, :, None] - s[:, None, :]  # [b, i, j] = s_i - s_j
    pair = y[:, :, None] & ~y[:, None, :]  # i positive, j negative
    wins = ((diff > 0) + 0.5 * (diff == 0)) * pair
    n_pairs = pair.sum(axis=(1, 2))
    out = np.full(len(y), np.nan)
    ok = n_pairs > 0
    out[ok] = wins.sum(axis=(1, 2))[ok] / n_pairs[ok]
    return out


def _percentile(vals: np.ndarray, level: float) -> list[float]:
    vals = vals[~np.isnan(vals)]
    q = (1 - level) / 2
    return [float(np.quantile(vals, q)), float(np.quantile(vals, 1 - q))]


def test_pair_auroc_reference_by_hand():
    # the reference itself, on pairs counted by hand: 3 wins + 1 tie of 4 pairs
    assert _pair_auroc([1, 0, 1, 0], [0.5, 0.5, 0.7, 0.2]).tolist() == [0.875]
    assert np.isnan(_pair_auroc([1, 1], [0.1, 0.2])[0])


def test_binary_interval_is_the_percentile_bootstrap_of_the_given_seed():
    # 1000 resamples of the 12 images with numpy's generator seeded as asked; pair counting per resample
    s = np.array([0.1, 0.6, 0.3, 0.4, 0.8, 0.9, 0.2, 0.7, 0.35, 0.5, 0.45, 0.65])
    y = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0])
    for seed in (0, 5):
        idx = np.random.default_rng(seed).integers(0, len(y), (1000, len(y)))
        want = _percentile(_pair_auroc(y[idx], s[idx]), 0.95)
        assert binary_metrics(y, s, 0.5, LABELS, "fractured", seed=seed)["auroc_ci95"] == pytest.approx(want, abs=1e-12)
    idx = np.random.default_rng(2).integers(0, len(y), (200, len(y)))
    assert bootstrap_auroc_ci(y, s, n=200, seed=2, level=0.8) == pytest.approx(
        tuple(_percentile(_pair_auroc(y[idx], s[idx]), 0.8)), abs=1e-12
    )


def _macro_reference(y: np.ndarray, probs: np.ndarray, seed: int, n: int = 300) -> list[float]:
    idx = np.random.default_rng(seed).integers(0, len(y), (n, len(y)))
    per_class = np.stack([_pair_auroc(y[idx] == i, probs[idx, i]) for i in range(probs.shape[1])], axis=1)
    rows = [np.mean(r[~np.isnan(r)]) for r in per_class if (~np.isnan(r)).any()]  # classes present in the resample
    return _percentile(np.array(rows), 0.95)


def test_multiclass_interval_is_the_bootstrap_of_the_mean_over_classes_present():
    # class c has one image: many resamples miss it, and their mean runs over the other classes only
    probs = np.array(
        [
            [0.6, 0.2, 0.1, 0.1],
            [0.3, 0.4, 0.2, 0.1],
            [0.2, 0.2, 0.5, 0.1],
            [0.1, 0.5, 0.1, 0.3],
            [0.25, 0.25, 0.1, 0.4],
            [0.4, 0.1, 0.1, 0.4],
            [0.1, 0.3, 0.3, 0.3],
            [0.5, 0.3, 0.1, 0.1],
            [0.2, 0.2, 0.2, 0.4],
        ]
    )
    y = np.array([0, 1, 2, 1, 3, 0, 3, 1, 3])
    m = multiclass_metrics(y, probs, list("abcd"))  # default seed 0
    assert m["auroc_ci95"] == pytest.approx(_macro_reference(y, probs, 0), abs=1e-12)
    assert multiclass_metrics(y, probs, list("abcd"), seed=3)["auroc_ci95"] == pytest.approx(
        _macro_reference(y, probs, 3), abs=1e-12
    )
    assert "auroc_ci95" not in multiclass_metrics(y, probs, list("abcd"), ci=False)


def test_auroc_rows_with_exactly_one_positive_or_one_negative():
    from edge.core.metrics import _auroc_rows

    y = np.array([[1, 0, 0, 0], [0, 1, 1, 1], [1, 0, 1, 0]], bool)
    s = np.array([[0.3, 0.1, 0.4, 0.2], [0.3, 0.1, 0.4, 0.3], [0.3, 0.1, 0.4, 0.2]])
    assert _auroc_rows(y, s).tolist() == pytest.approx(_pair_auroc(y, s).tolist())
    assert _auroc_rows(y, s).tolist() == pytest.approx([2 / 3, 1.5 / 3, 1.0])


def test_no_warnings_for_undefined_ratios_and_one_class_resamples():
    # the module's promise: undefined figures are 0 or NaN, never a warning (a log full of them hides real ones)
    from edge.core.metrics import _auroc_rows

    probs3 = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(_auroc_rows(np.array([[1, 1, 1], [0, 0, 0]], bool), np.ones((2, 3)))).all()
        m = binary_metrics(np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3]), 0.5, LABELS, "fractured")  # no positive calls
        assert (m["precision"], m["per_class"]["fractured"]["f1"]) == (0.0, 0.0)
        # class c is never predicted; three classes: the top-3 accuracy is 1 without asking sklearn
        m = multiclass_metrics(np.array([0, 2, 1]), probs3, list("abc"))
        assert m["per_class"]["c"]["precision"] == 0.0 and m["top3_accuracy"] == 1.0
        # one class only: every AUROC and every resample is undefined
        m = multiclass_metrics(np.array([1, 1, 1]), probs3, list("abc"))
        assert np.isnan(m["auroc"]) and len(m["auroc_ci95"]) == 2 and np.isnan(m["auroc_ci95"]).all()
        # class b holds every image: its specificity has no negatives and is undefined (NaN), not 0 or 1;
        # the mean specificity is over the classes that have negatives
        assert np.isnan(m["per_class"]["b"]["specificity"]) and m["per_class"]["a"]["specificity"] == pytest.approx(1 / 3)
        assert m["specificity"] == pytest.approx(np.mean([m["per_class"][c]["specificity"] for c in "ac"]))


def test_top3_counts_the_third_guess_and_allows_absent_classes():
    # four classes, class d never the truth; image 1's truth is its 3rd guess, image 2's its 4th
    probs = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], [0.2, 0.5, 0.2, 0.1]])
    y = np.array([0, 1, 0, 2])
    m = multiclass_metrics(y, probs, list("abcd"), ci=False)
    assert m["top3_accuracy"] == pytest.approx(3 / 4)  # top-2 would be 2 / 4


def test_counts_are_integers_and_labels_are_kept():
    # integer counts: the JSON report says 2, not 2.0
    cm = confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
    assert cm.dtype.kind == "i"
    m = multiclass_metrics(np.array([0, 1, 2]), np.eye(3), list("abc"), ci=False)
    assert m["confusion"] == {"labels": ["a", "b", "c"], "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
    assert all(type(v) is int for row in m["confusion"]["matrix"] for v in row)


def test_roc_curve_of_one_class_is_flat_with_descending_thresholds():
    fpr, tpr, thr = roc_curve(np.zeros(4), np.array([0.1, 0.5, 0.3, 0.5]))
    assert thr.tolist() == [np.inf, 0.5, 0.3, 0.1]
    assert fpr.tolist() == tpr.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_bootstrap_of_no_images_is_nan():
    lo, hi = bootstrap_auroc_ci(np.array([], int), np.array([]))
    assert np.isnan(lo) and np.isnan(hi)


def test_float32_scores_are_compared_in_float64():
    # LiteRT gives float32; a threshold a hair above a score must not round onto it in float32
    p = np.array([0.3, 0.9, 0.1], np.float32)
    thr = float(p[0]) + 1e-12
    assert np.float32(thr) == p[0]  # the trap: in float32 the two are equal
    m = binary_metrics(np.array([1, 1, 0]), p, thr, LABELS, "fractured", ci=False)
    assert m["confusion"]["matrix"] == [[1, 0], [1, 1]]


def test_proportion_ci_is_the_exact_interval():
    # Clopper-Pearson ends from the beta distribution (scipy.stats.beta), not binomtest
    from scipy.stats import beta

    for k, n, level in ((3, 10, 0.95), (7, 9, 0.8), (0, 4, 0.95), (5, 5, 0.9), (1, 1, 0.95)):
        a = (1 - level) / 2
        lo = beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
        hi = beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
        got = proportion_ci(k, n, level) if level != 0.95 else proportion_ci(k, n)
        assert got == pytest.approx([lo, hi], abs=1e-9)
        assert all(type(v) is float for v in got)
    assert np.isnan(proportion_ci(0, 0)).all() and len(proportion_ci(0, 0)) == 2


def _gap_reference(a, b, threshold, n, seed, level):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)  # set A is resampled first, then set B, from one generator
    boots, points = [], []
    for y, p in (a, b):
        y, p = np.asarray(y, bool), np.asarray(p, np.float64)
        idx = rng.integers(0, len(y), (n, len(y)))
        yy, pp = y[idx], p[idx] >= threshold
        npos, nneg = yy.sum(axis=1), (~yy).sum(axis=1)
        sens = np.array([(yy[i] & pp[i]).sum() / npos[i] if npos[i] else np.nan for i in range(n)])
        spec = np.array([(~yy[i] & ~pp[i]).sum() / nneg[i] if nneg[i] else np.nan for i in range(n)])
        boots.append((_pair_auroc(yy, p[idx]), sens, spec))
        pos, neg = p[y], p[~y]
        points.append(
            (
                roc_auc_score(y, p) if len(pos) and len(neg) else np.nan,
                np.mean(pos >= threshold) if len(pos) else np.nan,
                np.mean(neg < threshold) if len(neg) else np.nan,
            )
        )
    out = {}
    for i, name in enumerate(("auroc", "sensitivity", "specificity")):
        d = boots[1][i] - boots[0][i]
        ci = _percentile(d, level) if (~np.isnan(d)).any() else [np.nan, np.nan]
        out[name] = (points[1][i] - points[0][i], ci)
    return out


def _assert_gap(got, want):
    for name, (diff, ci) in want.items():
        assert set(got[name]) == {"difference", "ci"}
        np.testing.assert_allclose(got[name]["difference"], diff, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got[name]["ci"], ci, rtol=0, atol=1e-12)
        assert len(got[name]["ci"]) == 2


def test_bootstrap_gap_against_an_independent_resampling():
    from edge.core.metrics import bootstrap_gap

    # scores exactly at the threshold (0.5) count as positive calls; the sets differ in size
    a = (np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 1]), np.array([0.9, 0.5, 0.3, 0.5, 0.2, 0.1, 0.6, 0.7, 0.4, 0.45]))
    b = (np.array([1, 0, 1, 0, 1, 0, 0, 1]), np.array([0.8, 0.3, 0.2, 0.5, 0.55, 0.5, 0.1, 0.5]))
    got = bootstrap_gap(a, b, 0.5, n=300, seed=4, level=0.9)
    assert (got["n_bootstrap"], got["level"]) == (300, 0.9)
    _assert_gap(got, _gap_reference(a, b, 0.5, 300, 4, 0.9))
    dflt = bootstrap_gap(a, b, 0.5)  # 1000 resamples, seed 0, 95 %
    assert (dflt["n_bootstrap"], dflt["level"]) == (1000, 0.95)
    _assert_gap(dflt, _gap_reference(a, b, 0.5, 1000, 0, 0.95))


def test_bootstrap_gap_with_a_set_without_positives_and_float32_scores():
    from edge.core.metrics import bootstrap_gap

    p32 = np.array([0.3, 0.8, 0.1, 0.6, 0.2, 0.7], np.float32)
    thr = float(p32[0]) + 1e-12  # equal to 0.3 in float32, above it in float64: 0.3 is a negative call
    a = (np.array([0, 1, 0, 1, 0, 0]), p32)
    b = (np.zeros(4, int), np.array([0.1, 0.4, 0.2, 0.35]))  # no positives: sensitivity and AUROC undefined
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = bootstrap_gap(a, b, thr, n=200, seed=1)
        rev = bootstrap_gap(b, a, thr, n=200, seed=1)
        no_neg = bootstrap_gap(a, (np.ones(3, int), np.array([0.9, 0.2, 0.3])), thr, n=100, seed=2)
    want = _gap_reference(a, b, thr, 200, 1, 0.95)
    _assert_gap(got, want)
    _assert_gap(rev, _gap_reference(b, a, thr, 200, 1, 0.95))
    assert np.isnan(got["auroc"]["difference"]) and np.isnan(got["sensitivity"]["ci"]).all()
    # no negatives in B: specificity undefined; sensitivity 1 of 3 in B (0.3 in float64 is below) against 2 of 2 in A
    assert np.isnan(no_neg["specificity"]["difference"]) and np.isnan(no_neg["specificity"]["ci"]).all()
    assert len(no_neg["specificity"]["ci"]) == 2 and no_neg["sensitivity"]["difference"] == pytest.approx(1 / 3 - 1)
    # specificity is defined on both sides: A calls 1 of 4 negatives positive (0.7; 0.3 is below the threshold),
    # B 2 of 4 (0.4 and 0.35)
    assert got["specificity"]["difference"] == pytest.approx(2 / 4 - 3 / 4)


def test_accuracy_gap_of_multiclass_sets_against_an_independent_resampling():
    from edge.core.metrics import bootstrap_accuracy_gap

    a = np.array([1, 1, 0, 1, 0, 1, 1, 0, 1, 1])  # 7 of 10 correct
    b = np.array([0, 1, 0, 0, 1, 0, 0, 1])  # 3 of 8 correct
    got = bootstrap_accuracy_gap(a, b, n=400, seed=5, level=0.9)
    rng = np.random.default_rng(5)
    # B is drawn first, then A, each n x len resamples of its own set
    boots = rng.choice(b.astype(float), (400, 8)).mean(axis=1) - rng.choice(a.astype(float), (400, 10)).mean(axis=1)
    assert (got["n_bootstrap"], got["level"]) == (400, 0.9)
    assert got["accuracy"]["difference"] == pytest.approx(3 / 8 - 7 / 10, abs=1e-12)
    np.testing.assert_allclose(got["accuracy"]["ci"], _percentile(boots, 0.9), rtol=0, atol=1e-12)
    # a set against itself: no difference; all right against all wrong: exactly -1 in every resample
    same = bootstrap_accuracy_gap(a, a)
    assert same["accuracy"]["difference"] == 0 and same["accuracy"]["ci"][0] < 0 < same["accuracy"]["ci"][1]
    assert bootstrap_accuracy_gap(np.ones(5), np.zeros(6))["accuracy"] == {"difference": -1.0, "ci": [-1.0, -1.0]}
    dflt = bootstrap_accuracy_gap(a, b)  # 1000 resamples, seed 0, 95 %
    assert (dflt["n_bootstrap"], dflt["level"]) == (1000, 0.95)
    assert dflt == bootstrap_accuracy_gap(a, b, n=1000, seed=0, level=0.95) != bootstrap_accuracy_gap(a, b, seed=1)


def test_binary_rate_intervals_are_exact_on_the_confusion_counts():
    from scipy.stats import beta

    # threshold 0.5: tp 3, fn 1, tn 3, fp 1 (the 0.5 negative is a positive call)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.7, 0.5, 0.2, 0.5, 0.3, 0.1, 0.4])
    m = binary_metrics(y, p, 0.5, LABELS, "fractured", ci=False)
    want = [beta.ppf(0.025, 3, 2), beta.ppf(0.975, 4, 1)]  # 3 of 4, both rates
    assert m["sensitivity_ci95"] == pytest.approx(want, abs=1e-9)
    assert m["specificity_ci95"] == pytest.approx(want, abs=1e-9)
    m = binary_metrics(y, p, 0.35, LABELS, "fractured", ci=False)  # tp 3 of 4, tn 2 of 4
    assert m["specificity_ci95"] == pytest.approx([beta.ppf(0.025, 2, 3), beta.ppf(0.975, 3, 2)], abs=1e-9)


def test_compute_metrics_defaults_and_its_binary_fields():
    labels = ["not_fractured", "fractured"]
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.9, 0.1], [0.45, 0.55], [0.7, 0.3]])
    y_idx = np.array([1, 1, 0, 0, 1, 0])
    m = compute_metrics(y_idx, probs, labels, "binary", "fractured")  # threshold 0.5, interval on
    assert m["threshold"] == 0.5 and m["positive_label"] == "fractured"
    assert m["confusion"] == {"labels": ["not_fractured", "fractured"], "matrix": [[2, 1], [1, 2]]}
    assert set(m["per_class"]) == {"fractured", "not_fractured"} and m["per_class"]["fractured"]["recall"] == 2 / 3
    y = y_idx == 1
    idx = np.random.default_rng(0).integers(0, 6, (1000, 6))
    assert m["auroc_ci95"] == pytest.approx(_percentile(_pair_auroc(y[idx], probs[idx, 1]), 0.95), abs=1e-12)
    assert "auroc_ci95" not in compute_metrics(y_idx, probs, labels, "binary", "fractured", ci=False)
    with pytest.raises(ValueError, match=r"^a binary task needs its positive label$"):
        compute_metrics(y_idx, probs, labels, "binary")


def test_float32_confidence_is_binned_by_its_exact_value():
    # float32(0.7) is 0.69999998807907...: below 0.7, so in the 0.6 bin (in float32 arithmetic 0.7 * 10 rounds to 7)
    conf = np.array([0.7, 0.9], np.float32)
    cal = calibration(conf, np.array([1.0, 0.0]))
    assert [(r["lo"], r["n"]) for r in cal["bins"]] == [(0.6, 1), (0.8, 1)]


def test_compute_metrics_multiclass_passes_the_interval_switch():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    y = np.array([0, 1, 2, 1, 2])
    assert compute_metrics(y, probs, list("abc"), "multiclass")["auroc_ci95"] == pytest.approx(
        _macro_reference(y, probs, 0), abs=1e-12
    )
    assert "auroc_ci95" not in compute_metrics(y, probs, list("abc"), "multiclass", ci=False)


def _paired_reference(y, pa, pb, thresholds, n, seed, level):
    """The paired bootstrap written out image by image: one set of resampled rows for both models."""
    from sklearn.metrics import roc_auc_score

    y, pa, pb = np.asarray(y, bool), np.asarray(pa, np.float64), np.asarray(pb, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(y), (n, len(y)))
    out = {
        "auroc": (
            roc_auc_score(y, pb) - roc_auc_score(y, pa),
            _percentile(_pair_auroc(y[idx], pb[idx]) - _pair_auroc(y[idx], pa[idx]), level),
        )
    }
    call_a, call_b = pa >= thresholds[0], pb >= thresholds[1]
    for name, member, want_call in (("sensitivity", y, True), ("specificity", ~y, False)):
        right_a, right_b = call_a == want_call, call_b == want_call
        boots = []
        for row in idx:
            m = member[row]
            boots.append((right_b[row][m].mean() - right_a[row][m].mean()) if m.any() else np.nan)
        out[name] = (right_b[member].mean() - right_a[member].mean(), _percentile(np.array(boots), level))
    return out


def test_paired_gap_against_a_resampling_written_out():
    from edge.core.metrics import paired_gap

    # A calls at 0.5, B at 0.4 (its own threshold); scores exactly at a threshold are positive calls
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1])
    pa = np.array([0.9, 0.5, 0.3, 0.5, 0.2, 0.1, 0.6, 0.7, 0.4, 0.45, 0.35, 0.8])
    pb = np.array([0.95, 0.4, 0.45, 0.3, 0.4, 0.1, 0.2, 0.75, 0.39, 0.6, 0.5, 0.7])
    got = paired_gap(y, pa, pb, (0.5, 0.4), n=300, seed=3, level=0.9)
    assert (got["n"], got["n_bootstrap"], got["level"]) == (12, 300, 0.9)
    for name, (diff, ci) in _paired_reference(y, pa, pb, (0.5, 0.4), 300, 3, 0.9).items():
        np.testing.assert_allclose(got[name]["difference"], diff, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got[name]["ci"], ci, rtol=0, atol=1e-12)
    # by hand. Positives (rows 0, 1, 2, 7, 9, 11): A flags 0, 1, 7, 11; B flags 0, 1, 2, 7, 9, 11
    # (0.4 >= B's 0.4): right only by B on rows 2 and 9. Negatives (3, 4, 5, 6, 8, 10): A clears 4, 5, 8, 10,
    # B clears 3, 5, 6, 8 (0.39 < 0.4): right only by B on 3 and 6, only by A on 4 and 10.
    s, sp = got["sensitivity"], got["specificity"]
    assert (s["only_b"], s["only_a"], sp["only_b"], sp["only_a"]) == (2, 0, 2, 2)
    assert s["difference"] == pytest.approx(6 / 6 - 4 / 6) and sp["difference"] == 0.0
    assert s["p_mcnemar"] == pytest.approx(0.5) and sp["p_mcnemar"] == 1.0  # two-sided exact: 2 * 0.5**2; 2 vs 2
    dflt = paired_gap(y, pa, pb, (0.5, 0.4))
    assert (dflt["n_bootstrap"], dflt["level"]) == (1000, 0.95)
    for name, (_diff, ci) in _paired_reference(y, pa, pb, (0.5, 0.4), 1000, 0, 0.95).items():
        np.testing.assert_allclose(dflt[name]["ci"], ci, rtol=0, atol=1e-12)


def test_paired_gap_is_antisymmetric_zero_for_one_model_and_narrower_than_unpaired():
    from edge.core.metrics import bootstrap_gap, paired_gap

    rng = np.random.default_rng(5)
    y = rng.random(200) < 0.3
    base = y * 1.2 + rng.normal(size=200)  # both models see the same hard images
    pa, pb = 1 / (1 + np.exp(-base)), 1 / (1 + np.exp(-(base + 0.3 * rng.normal(size=200))))
    ab, ba = paired_gap(y, pa, pb, (0.5, 0.45), seed=2), paired_gap(y, pb, pa, (0.45, 0.5), seed=2)
    for name in ("auroc", "sensitivity", "specificity"):
        assert ab[name]["difference"] == pytest.approx(-ba[name]["difference"])
        np.testing.assert_allclose(ab[name]["ci"], [-ba[name]["ci"][1], -ba[name]["ci"][0]], atol=1e-12)
    assert (ab["sensitivity"]["only_b"], ab["sensitivity"]["only_a"]) == (
        ba["sensitivity"]["only_a"],
        ba["sensitivity"]["only_b"],
    )
    same = paired_gap(y, pa, pa, (0.5, 0.5))
    for name in ("auroc", "sensitivity", "specificity"):
        assert same[name]["difference"] == 0.0 and same[name]["ci"] == [0.0, 0.0]
    assert same["sensitivity"]["p_mcnemar"] == 1.0 and same["sensitivity"]["only_b"] == 0
    unpaired = bootstrap_gap((y, pa), (y, pb), 0.5)
    width = lambda g: g["ci"][1] - g["ci"][0]  # noqa: E731
    assert width(ab["auroc"]) < 0.5 * width(unpaired["auroc"])


def test_paired_accuracy_gap_counts_and_interval():
    from edge.core.metrics import paired_accuracy_gap

    a = np.array([1, 1, 0, 0, 1, 1, 0, 1, 1, 0], bool)
    b = np.array([1, 1, 1, 1, 1, 0, 1, 1, 1, 1], bool)  # right only by B on 2, 3, 6, 9; only by A on 5
    got = paired_accuracy_gap(a, b, n=400, seed=1, level=0.9)
    g = got["accuracy"]
    assert (got["n"], got["n_bootstrap"], got["level"], g["only_b"], g["only_a"]) == (10, 400, 0.9, 4, 1)
    assert g["difference"] == pytest.approx(0.3)
    assert g["p_mcnemar"] == pytest.approx(0.375)  # two-sided exact binomial, 4 of 5 discordant: 2 * 6/32
    idx = np.random.default_rng(1).integers(0, 10, (400, 10))
    np.testing.assert_allclose(g["ci"], _percentile(b[idx].mean(axis=1) - a[idx].mean(axis=1), 0.9), atol=1e-12)
    dflt = paired_accuracy_gap(a, b)  # 1000 resamples, seed 0, 95%
    assert (dflt["n_bootstrap"], dflt["level"]) == (1000, 0.95)
    idx = np.random.default_rng(0).integers(0, 10, (1000, 10))
    np.testing.assert_allclose(dflt["accuracy"]["ci"], _percentile(b[idx].mean(axis=1) - a[idx].mean(axis=1), 0.95), atol=1e-12)
    # the models differ on the first image only: a resample that could never draw it would show no difference
    one = paired_accuracy_gap(np.r_[False, a[1:]], np.r_[True, a[1:]], seed=3)["accuracy"]
    assert one["difference"] == pytest.approx(0.1) and one["ci"] == [0.0, pytest.approx(0.3)]


def test_paired_gap_on_float32_scores_and_a_rare_class_without_warnings():
    from edge.core.metrics import paired_gap

    # float32 scores with a threshold just above one of them in float64 only: compared in float64, 0.3 is a
    # negative call for both models (as bootstrap_gap and binary_metrics compare)
    p32 = np.array([0.3, 0.8, 0.1, 0.6, 0.2, 0.7, 0.4, 0.9], np.float32)
    thr = float(p32[0]) + 1e-12
    y = np.array([1, 1, 0, 1, 0, 0, 0, 1])  # image 0 is a positive at the threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # resamples without a negative or a positive: NaN, and no RuntimeWarning
        got = paired_gap(y, p32, p32[::-1].copy(), (thr, thr), n=300, seed=2)
        rare = paired_gap(np.r_[1, np.zeros(11, int)], np.linspace(0.9, 0.1, 12), np.linspace(0.1, 0.9, 12), (0.5, 0.5), n=200)
    # positives 0, 1, 3, 7. A (0.3, 0.8, 0.6, 0.9) flags 1, 3, 7: image 0's 0.3 is below thr in float64.
    # B, the scores reversed (0.9, 0.4, 0.2, 0.3), flags 0 and 1: image 7's 0.3 is below thr too
    assert got["sensitivity"]["difference"] == pytest.approx(2 / 4 - 3 / 4)
    assert (got["sensitivity"]["only_b"], got["sensitivity"]["only_a"]) == (1, 2)
    assert rare["sensitivity"]["difference"] == -1.0 and not np.isnan(rare["sensitivity"]["ci"]).any()
