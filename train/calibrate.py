"""Temperature/Platt scaling folded into the final layer, and `edge calibrate` for an existing bundle.

Every architecture in the registry ends in one Dense layer with a sigmoid (binary) or softmax
(multi-class) activation. sigmoid((W h + b) / T + s) is sigmoid((W / T) h + (b / T + s)), so
rewriting that layer's kernel and bias calibrates the model itself: Keras, every TFLite precision
and the phone then output calibrated probabilities with no extra op and no reader that must
know T (edge.core.calibration says why binary models also get the shift s).

The threshold is then re-chosen on the calibrated validation probabilities with the
conservative rule of edge.core.calibration (a lower confidence bound on sensitivity).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.core import calibration as cal
from edge.core._tf import keras
from edge.core.bundle import CALIB_FILE, MODEL_FILE, Bundle, load_bundle, save_bundle, to_probabilities
from edge.core.data import discover, load_canvases
from edge.core.errors import BundleError, DataError, EdgeError
from edge.core.metrics import compute_metrics
from edge.core.preprocess import normalize
from edge.core.weights import load_weights_only

log = logging.getLogger(__name__)


def final_dense(model: Any) -> Any:
    """The model's last layer, which must be a plain Dense with sigmoid or softmax activation.

    A quantization-aware graph is refused: its Dense sits in a tfmot wrapper whose learned int8
    ranges (kernel and output) would no longer fit weights divided by T."""
    layer = model.layers[-1]
    if type(layer).__name__.startswith("Quantize"):
        raise _qat_refused()
    act = getattr(getattr(layer, "activation", None), "__name__", None)
    if not isinstance(layer, keras.layers.Dense) or act not in ("sigmoid", "softmax"):
        raise BundleError(f"the model does not end in a sigmoid/softmax Dense layer (found {type(layer).__name__} {layer.name})")
    return layer


def _qat_refused(where: Path | None = None) -> BundleError:
    return BundleError(
        "cannot fold a temperature into a quantization-aware (QAT) model: its learned int8 ranges would no longer fit",
        where,
        "calibrate the float bundle first, then run `edge compress` on the calibrated one (it distils the calibrated outputs)",
    )


def logits(model: Any, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The final layer's pre-activation values, in float64: its input features times its kernel plus
    bias (computed here rather than inverted from probabilities, which saturate at 0 and 1)."""
    layer = final_dense(model)
    features = keras.Model(model.inputs, layer.input).predict(x, batch_size=batch_size, verbose=0)
    w, b = (np.asarray(v, dtype=np.float64) for v in layer.get_weights())
    z = np.asarray(features, dtype=np.float64) @ w + b
    return z.reshape(-1) if z.shape[1] == 1 else z


def fold_scaling(model: Any, temperature: float, shift: float = 0.0) -> None:
    """Kernel / T and bias / T + shift in the final Dense (in place), computed in float64."""
    layer = final_dense(model)
    w, b = layer.get_weights()
    w2 = np.asarray(w, np.float64) / temperature
    b2 = np.asarray(b, np.float64) / temperature + shift
    layer.set_weights([w2.astype(w.dtype), b2.astype(b.dtype)])


def fit_and_fold(
    model: Any,
    task: str,
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    others: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    fitted_on: str = "val",
    method: str = "platt",
) -> dict[str, Any]:
    """Fit (T, shift) on (x_fit, y_fit), fold them into ``model``, and return the card's calibration
    record: T, shift and ECE, Brier and NLL before and after, on the fitting split and on ``others``
    (e.g. test: measured only, never fitted on). ``y``: 1 = positive (binary) or the class index.
    ``method``: platt (binary: T and shift) or temperature (T only; multi-class always)."""
    z = {fitted_on: (logits(model, x_fit), y_fit)}
    for name, (x, y) in (others or {}).items():
        if len(x):
            z[name] = (logits(model, x), y)
    t, shift = cal.fit(z[fitted_on][0], y_fit, task, method)
    fold_scaling(model, t, shift)
    return {
        "method": method if task == "binary" else "temperature",
        "temperature": t,
        "shift": shift,
        "formula": "logit' = logit / temperature + shift",
        "fitted_on": fitted_on,
        "folded_into": final_dense(model).name,  # already applied: a reader must not apply it again
        "before": {k: cal.summary(zz, yy, task) for k, (zz, yy) in z.items()},
        "after": {k: cal.summary(zz, yy, task, t, shift) for k, (zz, yy) in z.items()},
    }


def operating_point(
    task: str,
    y: np.ndarray,
    p_positive: np.ndarray,
    target_sensitivity: float,
    calibrated: bool = True,
    confidence: float = cal.CONFIDENCE,
) -> tuple[float, dict | None]:
    """(threshold, threshold policy for the card): the conservative rule for binary tasks; multi-class
    tasks decide by arg-max and keep the neutral 0.5 with no policy."""
    if task != "binary":
        return 0.5, None
    threshold, policy = cal.choose_threshold_bound(y, p_positive, target_sensitivity, confidence)
    if not policy["reached"]:
        log.warning(
            "%d validation positives cannot show sensitivity >= %.2f with %.0f%% confidence: the threshold keeps every one",
            policy["n_positives"],
            target_sensitivity,
            100 * policy["confidence"],
        )
    snapped = cal.snap_to_output_grid(threshold)
    if snapped != threshold:  # the rule's figures at the threshold actually stored
        pos = np.asarray(p_positive, dtype=np.float64)[np.asarray(y).astype(bool)]
        kept = int((pos >= snapped).sum())
        policy = {
            **policy,
            "val_sensitivity": kept / len(pos),
            "val_sensitivity_lower_bound": float(cal.sensitivity_lower_bound(np.array([kept]), len(pos), confidence)[0]),
            "output_grid": {"steps": cal.OUTPUT_GRID, "snapped_from": threshold},
        }
    return snapped, {**policy, "chosen_on": "val", "probabilities": "calibrated" if calibrated else "uncalibrated"}


def calibrate_bundle(
    bundle: str | Path | None,
    data: str | Path,
    out: str | Path,
    split: str | None = None,
    target_sensitivity: float | None = None,
    method: str = "platt",
    confidence: float = cal.CONFIDENCE,
    skip_bad: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Bundle:
    """A new bundle at ``out``: ``bundle``'s model with T fitted on ``data`` folded in, the threshold
    re-chosen there with the conservative rule, and the card's calibration record and validation
    metrics updated. ``data``'s 'val' split is used when it has one (``split`` overrides), else all
    of it. The target sensitivity defaults to the one the bundle's policy recorded (else 0.90);
    ``confidence`` is the one-sided level of the lower bound on it."""
    src = load_bundle(bundle)
    if src.qat:
        raise _qat_refused(src.path)
    out = Path(out)
    if out.resolve() == src.path.resolve():
        raise EdgeError("the calibrated bundle must go to a new directory, not over its source", out)
    found = discover(data)
    if split and split not in found.splits:
        raise DataError(f"no '{split}' split (found {found.splits or 'no splits'})", data)
    name = split or ("val" if "val" in found.splits else None)
    if name is None and found.splits:
        raise DataError(f"no 'val' split to calibrate on (found {found.splits})", data, "pass --split NAME")
    ds = found.split(name) if name else found
    if name and not len(ds):
        raise DataError(f"no images in the '{name}' split", data)
    y_idx = ds.labels_index(src.labels)
    canv, kept, bad = load_canvases([s.path for s in ds.samples], src.spec, skip_bad=skip_bad, progress=progress)
    if not len(kept):
        raise DataError("no readable images to calibrate on", data)
    y_idx = y_idx[kept]
    pos = src.positive_index()
    y = (y_idx == pos).astype(np.int64) if src.task == "binary" else y_idx
    if src.task == "binary" and not (y.any() and (~y.astype(bool)).any()):
        raise DataError("calibration needs both classes in the data", data)

    model = load_weights_only(src.card, src.path / MODEL_FILE)  # a fresh copy: the source stays untouched
    x = normalize(canv, src.spec)
    record = fit_and_fold(model, src.task, x, y, fitted_on=name or "all", method=method)
    if src.card.calibration:  # calibrating twice: the model carries both maps; keep the first record
        record["previous"] = src.card.calibration
    record.update({"data": str(data), "skipped_files": len(bad), "source_bundle_sha256": src.sha256})

    probs = to_probabilities(model.predict(x, batch_size=64, verbose=0), src.task, src.labels, src.positive_label)
    policy_before = src.card.contract.threshold_policy or {}
    target = target_sensitivity or float(policy_before.get("target_sensitivity", 0.90))
    threshold, policy = operating_point(src.task, y, probs[:, pos], target, confidence=confidence)
    if policy is not None:
        policy["chosen_on"] = name or "all"
    contract = replace(src.card.contract, threshold=threshold, threshold_policy=policy)
    metrics = {"val": compute_metrics(y_idx, probs, src.labels, src.task, src.positive_label, threshold)}
    card = replace(
        src.card,
        contract=contract,
        model_id=src.model_id if src.model_id.endswith("-calibrated") else f"{src.model_id}-calibrated",
        # the old test figures described the uncalibrated model at the old threshold: `edge evaluate` gives new ones
        metrics=metrics,
        calibration=record,
        created=None,
        files={},
        bundle_sha256="",
    )
    keep = {n: src.path / n for n in src.card.files if n not in (MODEL_FILE, CALIB_FILE)}
    saved = save_bundle(out, model, card, extra=keep, calibration=src.calibration_canvases())
    log.info("calibrated bundle: %s (T=%.3f, threshold %.4f)", saved.path, record["temperature"], threshold)
    return saved


def fit_out_of_fold(
    model: Any,
    task: str,
    classes: list[str],
    pos: str | None,
    oof: tuple[np.ndarray, np.ndarray],
    target_sensitivity: float,
    scheme: str,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    roc_png: Path | None = None,
) -> tuple[dict[str, Any], float, dict | None, dict[str, Any], Path | None]:
    """Calibration and operating point from out-of-fold logits, folded into ``model``'s final layer.

    ``oof``: (logits, y) of every pooled image, each scored by a model that did not train on it;
    ``y``: 1 = positive (binary) or the class index. With k folds every pooled positive counts for
    the lower-bound rule (FracAtlas: about 500 instead of val's 64), so the bound costs far less
    specificity. ``test``: (logits before calibration, y), measured only. Returns (calibration
    record, threshold, threshold policy, metrics {"cv", "test"}, ROC plot of both when ``roc_png``)."""
    from .trainer import _to_label_index

    z, y = oof
    t, shift = cal.fit(z, y, task, "platt")
    fold_scaling(model, t, shift)
    parts = {"cv": (z, y), **({"test": test} if test is not None else {})}
    record = {
        "method": "platt" if task == "binary" else "temperature",
        "temperature": t,
        "shift": shift,
        "formula": "logit' = logit / temperature + shift",
        "fitted_on": f"out-of-fold logits ({scheme})",
        "folded_into": final_dense(model).name,
        "before": {k: cal.summary(zz, yy, task) for k, (zz, yy) in parts.items()},
        "after": {k: cal.summary(zz, yy, task, t, shift) for k, (zz, yy) in parts.items()},
    }
    probs = {
        k: to_probabilities(cal.probabilities(zz, task, t, shift).reshape(len(zz), -1), task, classes, pos)
        for k, (zz, _) in parts.items()
    }
    y_idx = {k: _to_label_index(yy, task, classes, pos) for k, (_, yy) in parts.items()}
    pcol = classes.index(pos) if task == "binary" and pos is not None else 0
    threshold, policy = operating_point(task, y_idx["cv"] == pcol, probs["cv"][:, pcol], target_sensitivity, True)
    if policy is not None:
        policy["chosen_on"] = f"out-of-fold scores ({scheme})"
    metrics = {k: compute_metrics(y_idx[k], probs[k], classes, task, pos, threshold) for k in parts}
    roc = None
    if roc_png is not None and task == "binary":
        from edge.core import plots
        from edge.core.metrics import roc_curve

        names = {"cv": "out-of-fold", "test": "test"}  # the scheme is in the card; a legend must fit the plot
        curves = {names[k]: (*roc_curve(y_idx[k] == pcol, probs[k][:, pcol])[:2], metrics[k]["auroc"]) for k in parts}
        m = metrics["cv"]
        roc = plots.roc(curves, roc_png, (1 - m["specificity"], m["sensitivity"]))
    return record, threshold, policy, metrics, roc
