"""Temperature (and Platt) scaling and a conservative operating threshold: numpy/scipy, no TensorFlow.

Temperature scaling divides the final layer's logits by one fitted number T (Guo et al. 2017);
Platt scaling (binary only) also adds a shift: z' = z / T + shift. Both are increasing maps, so
the ranking (AUROC) is unchanged, only the probabilities move. Because the final layer is a Dense
followed by sigmoid/softmax, W / T and b / T + shift give exactly the new logits, so the
calibrated model needs no extra op (train.calibrate folds it in).

Why Platt for binary models: a model trained with class weights (the default, about 1 : 4.7 on
FracAtlas) has its logits shifted by about log(4.7): it over-predicts the positive class at every
confidence. A temperature alone cannot remove a shift (on the default model T came out 1.00 and
the validation ECE stayed 0.23); one more parameter can. Multi-class models keep T alone.

The threshold is chosen so that its sensitivity *holds on new images*, not only on the
validation split it was picked on (see ``choose_threshold_bound``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize, special, stats
from sklearn import metrics as skm

from .metrics import calibration

# T is searched on a log scale within [e^-4, e^4] (0.018..55): wide enough for any network we
# train, and bounded so a validation set with one class only cannot send it to infinity.
LOG_T_BOUNDS = (-4.0, 4.0)
CONFIDENCE = 0.95  # one-sided level of the sensitivity lower bound


METHODS = ("platt", "temperature")


def nll(logits: np.ndarray, y: np.ndarray, task: str, temperature: float = 1.0, shift: float = 0.0) -> float:
    """Mean negative log-likelihood of the labels under logits / T, computed from the logits
    (not from probabilities, which saturate to 0 or 1 in float32 and make the log infinite).

    Binary: ``logits`` N (or N x 1), ``y`` 1 = positive. Multi-class: N x K, ``y`` class index."""
    z = np.asarray(logits, dtype=np.float64) / temperature + shift
    y = np.asarray(y)
    if task == "binary":
        z = z.reshape(-1)
        # -log sigmoid(z) for positives, -log sigmoid(-z) for negatives
        return float(np.mean(np.logaddexp(0.0, np.where(y.astype(bool), -z, z))))
    logp = special.log_softmax(z, axis=1)
    return float(-np.mean(logp[np.arange(len(y)), y.astype(np.int64)]))


def fit_temperature(logits: np.ndarray, y: np.ndarray, task: str) -> float:
    """The T > 0 minimising the NLL of ``y`` under softmax/sigmoid(logits / T)."""
    if not len(y):
        raise ValueError("no samples to fit a temperature on")
    res = optimize.minimize_scalar(
        lambda log_t: nll(logits, y, task, float(np.exp(log_t))), bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6}
    )
    return float(np.exp(res.x))


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(T, shift) minimising the binary NLL under sigmoid(logits / T + shift), with T > 0 so the
    map stays increasing (a logistic regression on the logit could turn the ranking round)."""
    if not len(y):
        raise ValueError("no samples to fit a calibration on")
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    t0 = fit_temperature(z, y, "binary")  # a good start; the shift starts at 0
    res = optimize.minimize(
        lambda v: nll(z, y, "binary", float(np.exp(v[0])), float(v[1])),
        x0=np.array([np.log(t0), 0.0]),
        method="L-BFGS-B",
        bounds=[LOG_T_BOUNDS, (-20.0, 20.0)],
    )
    return float(np.exp(res.x[0])), float(res.x[1])


def fit(logits: np.ndarray, y: np.ndarray, task: str, method: str = "platt") -> tuple[float, float]:
    """(T, shift) by ``method``; multi-class tasks always use the temperature alone (shift 0)."""
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, not {method!r}")
    if task == "binary" and method == "platt":
        return fit_platt(logits, y)
    return fit_temperature(logits, y, task), 0.0


def probabilities(logits: np.ndarray, task: str, temperature: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """P(positive) (binary, N) or softmax rows (N x K) of logits / T + shift, in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature + shift
    return special.expit(z.reshape(-1)) if task == "binary" else special.softmax(z, axis=1)


def summary(logits: np.ndarray, y: np.ndarray, task: str, temperature: float = 1.0, shift: float = 0.0) -> dict[str, float]:
    """ECE, Brier score and NLL at (T, shift), with ECE as ``edge evaluate`` computes it:
    reliability of P(positive) for binary tasks, of the top-1 confidence for multi-class ones."""
    p = probabilities(logits, task, temperature, shift)
    y = np.asarray(y)
    if task == "binary":
        yb = y.astype(np.int64)
        ece = calibration(p, yb.astype(np.float64))["ece"]
        brier = float(skm.brier_score_loss(yb, p, pos_label=1))
    else:
        ece = calibration(p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64))["ece"]
        brier = float(np.mean(np.sum((p - np.eye(p.shape[1])[y.astype(np.int64)]) ** 2, axis=1)))
    return {"ece": float(ece), "brier": brier, "nll": nll(logits, y, task, temperature, shift), "n": int(len(y))}


def sensitivity_lower_bound(k: np.ndarray | int, n: int, confidence: float = CONFIDENCE) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound of a proportion k/n: the beta quantile
    Beta(alpha; k, n - k + 1), 0 when k = 0. (The two-sided exact interval at level 1 - 2 alpha has
    the same lower end; tests compare it with scipy.stats.binomtest.)"""
    k = np.asarray(k, dtype=np.float64)
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore"):
        lb = stats.beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, lb, 0.0)


def choose_threshold_bound(
    y: np.ndarray, p: np.ndarray, target_sensitivity: float = 0.90, confidence: float = CONFIDENCE
) -> tuple[float, dict[str, Any]]:
    """The largest threshold t whose validation sensitivity (positives with p >= t) has a
    one-sided ``confidence`` Clopper-Pearson lower bound of at least the target.

    Why a bound: the point estimate on one small split is optimistic for new images. The
    default model's threshold was picked at 0.90 sensitivity on 64 validation positives and
    gave 0.82 on unseen FracAtlas images; with 64 positives the sampling error of a
    sensitivity near 0.9 alone is about +-0.04. Requiring the lower bound to reach the target
    means that, if the new images come from the same distribution, the true sensitivity
    falls short of the target with probability at most 1 - confidence. The price is a lower
    threshold (more false positives): for a screening flag that is the right side to err on.
    Out-of-fold predictions were the alternative, but an existing bundle (``edge calibrate``)
    has no folds to re-train, and one rule for both paths keeps the card's policy comparable.

    Returns (threshold, facts for the card's threshold policy). When even keeping every
    positive cannot reach the target with that confidence (too few positives), the threshold
    keeps every positive and ``reached`` is False. No positives: 0.5, ``reached`` False."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    n = int(y.sum())
    policy: dict[str, Any] = {
        "rule": "sensitivity_lower_bound",
        "bound": "clopper_pearson_one_sided",
        "target_sensitivity": float(target_sensitivity),
        "confidence": float(confidence),
        "n_positives": n,
    }
    if n == 0:
        return 0.5, {**policy, "reached": False}
    pos = np.sort(p[y])[::-1]  # descending
    cand = np.unique(pos)[::-1]  # each distinct positive score, highest first
    # positives kept at threshold c: those with p >= c (ties at the threshold count as positive)
    kept = len(pos) - np.searchsorted(pos[::-1], cand, side="left")
    lb = sensitivity_lower_bound(kept, n, confidence)
    ok = np.flatnonzero(lb >= target_sensitivity)
    i = int(ok[0]) if len(ok) else len(cand) - 1  # the first (highest) candidate that reaches it
    return float(cand[i]), {
        **policy,
        "reached": bool(len(ok)),
        "val_sensitivity": float(kept[i] / n),
        "val_sensitivity_lower_bound": float(lb[i]),
    }


# TFLite fixes the int8/uint8 output of LOGISTIC at scale 1/256: the phone's int8 model reports
# P(positive) on a grid of 256 steps, rounded to the nearest.
OUTPUT_GRID = 256


def snap_to_output_grid(threshold: float, steps: int = OUTPUT_GRID) -> float:
    """The largest half step (k + 0.5) / steps at or below ``threshold``.

    Why: the int8 model's output is q = round(p * steps) / steps. With the threshold on a half step,
    q >= t exactly when p >= t, so the float model and the phone's int8 model make the same call
    for the same p, and only the int8 error before the sigmoid can separate them. At a calibrated
    threshold near 0.03 the grid is coarse (8 steps): an unsnapped 0.0306 made every p in
    [0.0293, 0.0306) positive on the phone and negative in Keras (2 of the 36 demo samples).
    Down, never up: a lower threshold keeps at least the positives the sensitivity rule counted.
    A threshold below the first half step is returned unchanged (no half step lies under it)."""
    snapped = (np.floor(threshold * steps - 0.5) + 0.5) / steps
    return float(snapped) if snapped > 0 else float(threshold)
