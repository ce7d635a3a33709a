"""Classification metrics, computed with numpy only so tests can check them by hand.

Binary tasks use P(positive) and an operating threshold; multi-class tasks use arg-max.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney U)."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks over ties
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending, starting at (0, 0)."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(-np.asarray(score), kind="mergesort")
    s, yy = np.asarray(score)[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(yy)[distinct]
    fps = (distinct + 1) - tps
    P, N = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fps / N], np.r_[0.0, tps / P], np.r_[np.inf, s[distinct]]


def bootstrap_auroc_ci(y: np.ndarray, score: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC (resampling images with replacement)."""
    rng = np.random.default_rng(seed)
    y, score = np.asarray(y), np.asarray(score)
    vals = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            vals.append(auroc(y[idx], score[idx]))
    if not vals:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def confusion_matrix(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y), np.asarray(pred)), 1)
    return cm


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def calibration(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and the reliability-diagram bins (equal-width)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            acc, c = float(correct[m].mean()), float(conf[m].mean())
            ece += m.mean() * abs(acc - c)
            rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()), "confidence": c, "accuracy": acc})
    return {"ece": float(ece), "bins": rows}


def choose_threshold(y: np.ndarray, p: np.ndarray, target_sensitivity: float = 0.90) -> float:
    """The highest threshold whose sensitivity reaches the target (so specificity is as high as it can be)."""
    y = np.asarray(y).astype(bool)
    pos = np.sort(np.asarray(p)[y])[::-1]
    if len(pos) == 0:
        return 0.5
    k = int(np.ceil(target_sensitivity * len(pos)))  # need at least k positives at or above the threshold
    return float(pos[max(k, 1) - 1])


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float, labels: Sequence[str], positive: str,
                   ci: bool = True, seed: int = 0) -> dict[str, Any]:
    """Metrics for P(positive) ``p`` against 0/1 ``y`` (1 = positive)."""
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    pred = (p >= threshold).astype(np.int64)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    sens, spec = _safe_div(tp, tp + fn), _safe_div(tn, tn + fp)
    prec = _safe_div(tp, tp + fp)
    f1 = _safe_div(2 * prec * sens, prec + sens)
    negative = next(lbl for lbl in labels if lbl != positive)
    # per-class figures, each class taken as the positive one in turn
    npv = _safe_div(tn, tn + fn)
    per_class = {
        positive: {"precision": prec, "recall": sens, "f1": f1, "support": int((y == 1).sum())},
        negative: {"precision": npv, "recall": spec, "f1": _safe_div(2 * npv * spec, npv + spec), "support": int((y == 0).sum())},
    }
    out: dict[str, Any] = {
        "n": int(len(y)),
        "task": "binary",
        "positive_label": positive,
        "threshold": float(threshold),
        "accuracy": _safe_div(tp + tn, len(y)),
        "precision": prec,
        "recall": sens,
        "f1": f1,
        "auroc": auroc(y, p),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": (sens + spec) / 2,
        "macro_f1": float(np.mean([v["f1"] for v in per_class.values()])),
        "per_class": per_class,
        "confusion": {"labels": [negative, positive], "matrix": [[tn, fp], [fn, tp]]},
        "brier": float(np.mean((p - y) ** 2)),
    }
    conf = np.where(pred == 1, p, 1 - p)
    out["calibration"] = calibration(p, y.astype(np.float64))  # reliability of P(positive) itself
    out["ece"] = out["calibration"]["ece"]
    out["top1_confidence_mean"] = float(conf.mean()) if len(conf) else 0.0
    if ci and len(np.unique(y)) == 2:
        lo, hi = bootstrap_auroc_ci(y, p, seed=seed)
        out["auroc_ci95"] = [lo, hi]
    return out


def multiclass_metrics(y: np.ndarray, probs: np.ndarray, labels: Sequence[str], ci: bool = True, seed: int = 0) -> dict[str, Any]:
    y = np.asarray(y).astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(labels)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    per_class, sens, specs, aucs = {}, [], [], []
    for i, name in enumerate(labels):
        tp = cm[i, i]
        fp = cm[:, i].sum() - tp
        fn = cm[i, :].sum() - tp
        tn = cm.sum() - tp - fp - fn
        prec, rec = _safe_div(tp, tp + fp), _safe_div(tp, tp + fn)
        spec = _safe_div(tn, tn + fp)
        a = auroc(y == i, probs[:, i])
        per_class[name] = {"precision": prec, "recall": rec, "f1": _safe_div(2 * prec * rec, prec + rec),
                           "specificity": spec, "auroc": a, "support": int((y == i).sum())}
        sens.append(rec)
        specs.append(spec)
        if not np.isnan(a):
            aucs.append(a)
    conf = probs.max(axis=1)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "task": "multiclass",
        "threshold": None,
        "accuracy": _safe_div(int((pred == y).sum()), len(y)),
        "precision": float(np.mean([v["precision"] for v in per_class.values()])),
        "recall": float(np.mean(sens)),
        "f1": float(np.mean([v["f1"] for v in per_class.values()])),
        "auroc": float(np.mean(aucs)) if aucs else float("nan"),
        "sensitivity": float(np.mean(sens)),
        "specificity": float(np.mean(specs)),
        "per_class": per_class,
        "confusion": {"labels": list(labels), "matrix": cm.tolist()},
        "top3_accuracy": float(np.mean([y[i] in np.argsort(-probs[i])[:3] for i in range(len(y))])) if len(y) else 0.0,
    }
    out["calibration"] = calibration(conf, (pred == y).astype(np.float64))
    out["ece"] = out["calibration"]["ece"]
    if ci and len(y):
        rng = np.random.default_rng(seed)
        boots = []
        for _ in range(300):
            idx = rng.integers(0, len(y), len(y))
            vals = [auroc(y[idx] == i, probs[idx, i]) for i in range(k)]
            vals = [v for v in vals if not np.isnan(v)]
            if vals:
                boots.append(np.mean(vals))
        out["auroc_ci95"] = [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))] if boots else [float("nan")] * 2
    return out


def compute_metrics(y_idx: np.ndarray, probs: np.ndarray, labels: Sequence[str], task: str,
                    positive: str | None = None, threshold: float = 0.5, ci: bool = True) -> dict[str, Any]:
    """One entry point: ``probs`` is N x K in ``labels`` order, ``y_idx`` indexes ``labels``."""
    labels = list(labels)
    if task == "binary":
        pos = labels.index(positive)
        return binary_metrics(np.asarray(y_idx) == pos, probs[:, pos], threshold, labels, positive, ci=ci)
    return multiclass_metrics(y_idx, probs, labels, ci=ci)


def subgroup_metrics(y_idx: np.ndarray, probs: np.ndarray, labels: Sequence[str], task: str, positive: str | None,
                     threshold: float, groups: dict[str, np.ndarray], min_n: int = 10) -> dict[str, Any]:
    """The same metrics within each subgroup mask (e.g. body region, hardware == 0)."""
    out = {}
    for name, mask in groups.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.sum() < min_n:
            out[name] = {"n": int(mask.sum()), "note": f"fewer than {min_n} images"}
            continue
        m = compute_metrics(np.asarray(y_idx)[mask], probs[mask], labels, task, positive, threshold, ci=False)
        out[name] = {k: m[k] for k in ("n", "accuracy", "precision", "recall", "f1", "auroc", "sensitivity", "specificity")}
    return out
