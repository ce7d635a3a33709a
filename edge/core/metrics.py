"""Classification metrics through scikit-learn, in the report's own field names.

Binary tasks use P(positive) and an operating threshold (positive when p >= threshold);
multi-class tasks use arg-max. Undefined figures are never a warning: sensitivity without
positives, specificity without negatives and AUROC with one class are NaN; precision and F1
without predicted positives are 0 (no calls, no credit).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import binomtest, rankdata
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning


def _both_classes(y: np.ndarray) -> bool:
    y = np.asarray(y).astype(bool)
    return bool(y.any() and (~y).any())


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    return float(skm.roc_auc_score(y, np.asarray(score))) if _both_classes(y) else float("nan")


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending (the first is inf), starting at (0, 0)."""
    y = np.asarray(y).astype(bool)
    if not _both_classes(y):  # sklearn would divide by zero; a flat curve is what a plot can show
        s = np.unique(np.asarray(score, dtype=np.float64))[::-1]
        zeros = np.zeros(len(s) + 1)
        return zeros, zeros.copy(), np.r_[np.inf, s]
    fpr, tpr, thr = skm.roc_curve(y, np.asarray(score), drop_intermediate=False)
    return fpr, tpr, thr


def _auroc_rows(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """AUROC of each row of B x N resamples at once (Mann-Whitney U from average ranks).

    roc_auc_score validates its input on every call (about 1-10 ms here), which makes a
    1000-fold bootstrap take seconds; ranking all resamples in one call takes milliseconds.
    Rows with one class only give NaN. tests/test_metrics.py checks it against roc_auc_score."""
    y = np.asarray(y, dtype=bool)
    ranks = rankdata(score, axis=1)  # ties get their average rank
    n_pos = y.sum(axis=1).astype(np.float64)
    n_neg = y.shape[1] - n_pos
    u = (ranks * y).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def bootstrap_auroc_ci(
    y: np.ndarray, score: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC (resampling images with replacement)."""
    y, score = np.asarray(y).astype(bool), np.asarray(score, dtype=np.float64)
    if len(y) == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(y), (n, len(y)))
    vals = _auroc_rows(y[idx], score[idx])
    vals = vals[~np.isnan(vals)]
    if not len(vals):
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def proportion_ci(k: int, n: int, level: float = 0.95) -> list[float]:
    """Two-sided exact (Clopper-Pearson) interval of a proportion k/n; NaNs when n = 0.

    Exact rather than Wilson: it never covers less than ``level``, which is the side to err on
    for a sensitivity that a clinician relies on."""
    if n <= 0:
        return [float("nan"), float("nan")]
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


def bootstrap_gap(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    threshold: float,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Differences B - A between two independent binary data sets, each given as (y, P(positive)):
    AUROC, and sensitivity and specificity at ``threshold`` (p >= threshold is positive), each
    with a percentile bootstrap interval (images resampled within each set independently)."""
    rng = np.random.default_rng(seed)

    def stats_of(y: np.ndarray, p: np.ndarray) -> tuple[tuple[float, float, float], tuple[np.ndarray, ...]]:
        y, p = np.asarray(y).astype(bool), np.asarray(p, dtype=np.float64)
        idx = rng.integers(0, len(y), (n, len(y)))
        yy, pp = y[idx], p[idx] >= threshold
        with np.errstate(invalid="ignore", divide="ignore"):
            sens = (yy & pp).sum(axis=1) / yy.sum(axis=1)
            spec = (~yy & ~pp).sum(axis=1) / (~yy).sum(axis=1)
        point = (
            auroc(y, p),
            _rate(int((p[y] >= threshold).sum()), int(y.sum())),
            _rate(int((p[~y] < threshold).sum()), int((~y).sum())),
        )
        return point, (_auroc_rows(yy, p[idx]), sens, spec)

    (pa, ba), (pb, bb) = stats_of(*a), stats_of(*b)
    out: dict[str, Any] = {"n_bootstrap": n, "level": level}
    for i, name in enumerate(("auroc", "sensitivity", "specificity")):
        out[name] = _difference(pb[i] - pa[i], bb[i] - ba[i], level)
    return out


def bootstrap_accuracy_gap(
    correct_a: np.ndarray, correct_b: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Accuracy of B minus accuracy of A (multi-class sets, each given as per-image 0/1 correct),
    with a percentile bootstrap interval, images resampled within each set independently."""
    rng = np.random.default_rng(seed)
    ca, cb = (np.asarray(c, dtype=np.float64) for c in (correct_a, correct_b))
    boots = rng.choice(cb, (n, len(cb))).mean(axis=1) - rng.choice(ca, (n, len(ca))).mean(axis=1)
    return {"n_bootstrap": n, "level": level, "accuracy": _difference(cb.mean() - ca.mean(), boots, level)}


def paired_gap(
    y: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    thresholds: tuple[float, float],
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Differences B - A between two models scored on the same images (0/1 ``y``, each model's
    P(positive)): AUROC, and sensitivity and specificity each at the model's own threshold.

    The images are resampled once for both models (a paired bootstrap), so what is hard for both
    cancels and the interval is far narrower than that of two independent sets (``bootstrap_gap``).
    The rates also get McNemar's exact test on the images the two calls disagree on."""
    y = np.asarray(y).astype(bool)
    pa, pb = np.asarray(pa, dtype=np.float64), np.asarray(pb, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(y), (n, len(y)))
    yy = y[idx]
    out: dict[str, Any] = {"n": int(len(y)), "n_bootstrap": n, "level": level}
    boots = _auroc_rows(yy, pb[idx]) - _auroc_rows(yy, pa[idx])  # NaN for resamples of one class: left out
    out["auroc"] = _difference(auroc(y, pb) - auroc(y, pa), boots, level)
    right_a, right_b = (pa >= thresholds[0]) == y, (pb >= thresholds[1]) == y  # a right call on each image
    out["sensitivity"] = _paired_rate(right_a, right_b, y, idx, level)
    out["specificity"] = _paired_rate(right_a, right_b, ~y, idx, level)
    return out


def paired_accuracy_gap(
    correct_a: np.ndarray, correct_b: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Accuracy of model B minus model A on the same images (per-image 0/1 correct), with a paired
    bootstrap interval and McNemar's exact test."""
    ca, cb = np.asarray(correct_a).astype(bool), np.asarray(correct_b).astype(bool)
    idx = np.random.default_rng(seed).integers(0, len(ca), (n, len(ca)))
    every = np.ones(len(ca), dtype=bool)
    return {"n": int(len(ca)), "n_bootstrap": n, "level": level, "accuracy": _paired_rate(ca, cb, every, idx, level)}


def _paired_rate(right_a: np.ndarray, right_b: np.ndarray, member: np.ndarray, idx: np.ndarray, level: float) -> dict[str, Any]:
    """B - A of the share of right calls among ``member`` images, its paired bootstrap interval, the
    discordant counts (right only for B, right only for A) and McNemar's exact two-sided p."""
    k = int(member.sum())
    point = _rate(int((right_b & member).sum()), k) - _rate(int((right_a & member).sum()), k)
    mm = member[idx]
    with np.errstate(invalid="ignore"):
        boots = ((right_b[idx] & mm).sum(axis=1) - (right_a[idx] & mm).sum(axis=1)) / mm.sum(axis=1)
    only_b, only_a = int((right_b & ~right_a & member).sum()), int((right_a & ~right_b & member).sum())
    p = binomtest(only_b, only_b + only_a).pvalue if only_a + only_b else 1.0
    return {**_difference(point, boots, level), "only_b": only_b, "only_a": only_a, "p_mcnemar": float(p)}


def _difference(point: float, boots: np.ndarray, level: float) -> dict[str, Any]:
    """A point difference and the percentile interval of its bootstrap replicates (NaN ones, from
    resamples without a class, left out)."""
    q = (1 - level) / 2
    d = boots[~np.isnan(boots)]
    ci = [float(np.quantile(d, q)), float(np.quantile(d, 1 - q))] if len(d) else [float("nan")] * 2
    return {"difference": float(point), "ci": ci}


def confusion_matrix(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows = true class index, columns = predicted class index."""
    return skm.confusion_matrix(np.asarray(y), np.asarray(pred), labels=np.arange(k)).astype(np.int64)


def _rate(k: int, n: int) -> float:
    """k/n for a rate with an exact interval (sensitivity, specificity): NaN when n = 0, like
    ``proportion_ci`` and ``bootstrap_gap``: a set without negatives has no specificity, not 0."""
    return float(k / n) if n else float("nan")


def calibration(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and the reliability-diagram bins: equal width, each holding
    lo <= conf < hi (the last one also 1.0).

    The bin is floor(conf * bins), not a search in np.linspace edges: linspace(0, 1, 11)[3] is
    0.30000000000000004, which would put a confidence of exactly 0.3 in the 0.2 bin."""
    conf, correct = np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    which = np.clip(np.floor(conf * bins).astype(np.int64), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            acc, c = float(correct[m].mean()), float(conf[m].mean())
            ece += m.mean() * abs(acc - c)
            rows.append({"lo": b / bins, "hi": (b + 1) / bins, "n": int(m.sum()), "confidence": c, "accuracy": acc})
    return {"ece": float(ece), "bins": rows}


def choose_threshold(y: np.ndarray, p: np.ndarray, target_sensitivity: float = 0.90) -> float:
    """The highest threshold whose sensitivity (share of positives with p >= threshold) reaches
    the target, so specificity is as high as it can be there. With 7 positives and a target of
    0.9, 6/7 = 0.857 falls short: all 7 must be kept."""
    y = np.asarray(y).astype(bool)
    if not y.any():
        return 0.5
    with warnings.catch_warnings():  # no negatives: the false-positive rate is undefined, the tpr is not
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        _, tpr, thr = skm.roc_curve(y, np.asarray(p), drop_intermediate=False)
    i = max(int(np.argmax(tpr >= target_sensitivity)), 1)  # index 0 is the +inf threshold
    return float(thr[i])


def binary_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, labels: Sequence[str], positive: str, ci: bool = True, seed: int = 0
) -> dict[str, Any]:
    """Metrics for P(positive) ``p`` against 0/1 ``y`` (1 = positive)."""
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y, pred, labels=[0, 1]).ravel())
    # per-class figures, each class taken as the positive one in turn (precision of 'negative' = NPV)
    prec, rec, f1, support = skm.precision_recall_fscore_support(y, pred, labels=[1, 0], zero_division=0)
    negative = next(lbl for lbl in labels if lbl != positive)
    # the two rates are undefined without their class (an external set of fractures only has no
    # specificity); precision and F1 keep scikit-learn's zero_division=0: no calls, no credit
    sens, spec = _rate(tp, tp + fn), _rate(tn, tn + fp)
    per_class = {
        name: {"precision": float(prec[i]), "recall": r, "f1": float(f1[i]), "support": int(support[i])}
        for i, (name, r) in enumerate(((positive, sens), (negative, spec)))
    }
    out: dict[str, Any] = {
        "n": int(len(y)),
        "task": "binary",
        "positive_label": positive,
        "threshold": float(threshold),
        "accuracy": (tp + tn) / len(y),  # len(y) > 0: confusion_matrix refuses no images
        "precision": float(prec[0]),
        "recall": sens,
        "f1": float(f1[0]),
        "auroc": auroc(y, p),
        "sensitivity": sens,
        "specificity": spec,
        # exact 95% intervals of the two rates at this threshold (counts in the confusion matrix)
        "sensitivity_ci95": proportion_ci(tp, tp + fn),
        "specificity_ci95": proportion_ci(tn, tn + fp),
        "balanced_accuracy": (sens + spec) / 2,
        "macro_f1": float(np.mean(f1)),
        "per_class": per_class,
        "confusion": {"labels": [negative, positive], "matrix": [[tn, fp], [fn, tp]]},
        "brier": float(skm.brier_score_loss(y, p, pos_label=1)) if len(y) else 0.0,
    }
    conf = np.where(pred == 1, p, 1 - p)
    out["calibration"] = calibration(p, y.astype(np.float64))  # reliability of P(positive) itself
    out["ece"] = out["calibration"]["ece"]
    out["top1_confidence_mean"] = float(conf.mean()) if len(conf) else 0.0
    if ci and _both_classes(y):
        lo, hi = bootstrap_auroc_ci(y, p, seed=seed)
        out["auroc_ci95"] = [lo, hi]
    return out


def _macro_auroc_ci(y: np.ndarray, probs: np.ndarray, seed: int, n: int = 300) -> list[float]:
    """Bootstrap interval of the mean one-vs-rest AUROC over the classes present in each resample."""
    idx = np.random.default_rng(seed).integers(0, len(y), (n, len(y)))
    per_class = np.stack([_auroc_rows(y[idx] == i, probs[idx, i]) for i in range(probs.shape[1])], axis=1)
    ok = ~np.isnan(per_class).all(axis=1)
    if not ok.any():
        return [float("nan")] * 2
    boots = np.nanmean(per_class[ok], axis=1)
    return [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]


def multiclass_metrics(y: np.ndarray, probs: np.ndarray, labels: Sequence[str], ci: bool = True, seed: int = 0) -> dict[str, Any]:
    y = np.asarray(y).astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(labels)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    prec, rec, f1, support = skm.precision_recall_fscore_support(y, pred, labels=np.arange(k), zero_division=0)
    # specificity per class: true negatives over all negatives of that class (one-vs-rest)
    neg = cm.sum() - cm.sum(axis=1)
    tn = neg - (cm.sum(axis=0) - np.diag(cm))
    specs = [_rate(tn[i], neg[i]) for i in range(k)]  # NaN for a class that holds every image
    aucs = [auroc(y == i, probs[:, i]) for i in range(k)]
    per_class = {
        name: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "specificity": specs[i],
            "auroc": aucs[i],
            "support": int(support[i]),
        }
        for i, name in enumerate(labels)
    }
    present = [a for a in aucs if not np.isnan(a)]
    top3 = 1.0 if k <= 3 else float(skm.top_k_accuracy_score(y, probs, k=3, labels=np.arange(k)))
    out: dict[str, Any] = {
        "n": int(len(y)),
        "task": "multiclass",
        "threshold": None,
        "accuracy": int((pred == y).sum()) / len(y),  # len(y) > 0, as above
        "precision": float(np.mean(prec)),
        "recall": float(np.mean(rec)),
        "f1": float(np.mean(f1)),
        "auroc": float(np.mean(present)) if present else float("nan"),
        "sensitivity": float(np.mean(rec)),
        # mean over the classes that have negatives: with k >= 2 classes at most one (holding every image) has none
        "specificity": float(np.nanmean(specs)),
        "per_class": per_class,
        "confusion": {"labels": list(labels), "matrix": cm.tolist()},
        "top3_accuracy": top3 if len(y) else 0.0,
    }
    out["calibration"] = calibration(probs.max(axis=1), (pred == y).astype(np.float64))
    out["ece"] = out["calibration"]["ece"]
    if ci and len(y):
        out["auroc_ci95"] = _macro_auroc_ci(y, probs, seed)
    return out


def compute_metrics(
    y_idx: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    task: str,
    positive: str | None = None,
    threshold: float = 0.5,
    ci: bool = True,
) -> dict[str, Any]:
    """One entry point: ``probs`` is N x K in ``labels`` order, ``y_idx`` indexes ``labels``."""
    labels = list(labels)
    if task == "binary":
        if positive is None:
            raise ValueError("a binary task needs its positive label")
        pos = labels.index(positive)
        return binary_metrics(np.asarray(y_idx) == pos, probs[:, pos], threshold, labels, positive, ci=ci)
    return multiclass_metrics(y_idx, probs, labels, ci=ci)


def subgroup_metrics(
    y_idx: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    task: str,
    positive: str | None,
    threshold: float,
    groups: dict[str, np.ndarray],
    min_n: int = 10,
) -> dict[str, Any]:
    """The same metrics within each subgroup mask (e.g. body region, hardware == 0)."""
    out: dict[str, Any] = {}
    for name, mask in groups.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.sum() < min_n:
            out[name] = {"n": int(mask.sum()), "note": f"fewer than {min_n} images"}
            continue
        m = compute_metrics(np.asarray(y_idx)[mask], probs[mask], labels, task, positive, threshold, ci=False)
        out[name] = {k: m[k] for k in ("n", "accuracy", "precision", "recall", "f1", "auroc", "sensitivity", "specificity")}
    return out
