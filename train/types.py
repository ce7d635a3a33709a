"""The fracture-type model: the fracture model's features, a linear head, grouped cross-validation.

bone_break_types is small (about 490 web pictures over ten types) and full of copies of one
source under other names, so a network trained on it from scratch learns little (top-1 about
0.16 held out, chance 0.10). Here the embedded fracture model's backbone, trained on FracAtlas
radiographs, stays frozen; its globally pooled features of the clean picture and of several
strongly augmented copies (albumentations, train.augment) train a multinomial logistic
regression (scikit-learn). The head is then written into the same architecture with ten
softmax outputs (the feature standardisation folded into the dense layer), so the bundle
loads weights-only through the architecture registry like any other.

The headline figure is stratified k-fold cross-validation, repeated, with folds grouped by
source (edge.core.audit.source_groups): a picture and its copy never sit on both sides of a
fold. Pictures whose copy is filed under another type are left out (their label is unknown).
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core import plots
from edge.core.audit import SourceGroups, source_groups
from edge.core.bundle import Bundle, load_bundle, save_bundle
from edge.core.card import Contract, ModelCard
from edge.core.data import load_canvases
from edge.core.errors import DataError
from edge.core.metrics import compute_metrics
from edge.core.preprocess import normalize

from .augment import Augmenter, describe, load_augmentation

log = logging.getLogger(__name__)

CHANCE_NOTE = "chance is 1/{k} = {chance:.2f}"
WEAK_TOP1 = 0.6  # below this top-1 the card, the CLI and the server call the type a guess


@dataclass
class TypesConfig:
    data: str
    out: str = "runs/types"
    base: str | None = None  # the fracture bundle whose backbone gives the features (None: embedded default)
    views: int = 8  # augmented copies per training picture
    augment: str = "strong"
    c: float = 0.01  # inverse L2 strength of the logistic regression (chosen by grouped CV, see report)
    folds: int = 5
    repeats: int = 2
    near_corr: float = 0.92
    seed: int = 0
    model_id: str = "bone-break-types-linear-head"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Features:
    """Pooled backbone features of the clean pictures (N x D) and of ``views`` augmented copies (V x N x D)."""

    clean: np.ndarray
    augmented: np.ndarray


def feature_model(bundle: Bundle) -> Any:  # keras.Model: image -> pooled features
    """The bundle's graph up to the global pooling before its head (train.probe.feature_model)."""
    from .probe import feature_model as pooled

    return pooled(bundle.load_model())


def extract_features(bundle: Bundle, canvases: np.ndarray, views: int, augment: str, seed: int, batch_size: int = 32) -> Features:
    fx = feature_model(bundle)
    spec = bundle.spec

    def run(c: np.ndarray) -> np.ndarray:
        return np.asarray(fx.predict(normalize(c, spec), batch_size=batch_size, verbose=0), dtype=np.float32)

    augmenter = Augmenter(load_augmentation(augment, spec.pad_value))
    clean = run(canvases)
    aug = [run(augmenter(canvases, seed * 1000 + v)) for v in range(views)]
    return Features(clean, np.stack(aug) if aug else np.zeros((0, *clean.shape), np.float32))


def _fit_head(x: np.ndarray, y: np.ndarray, k: int, c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardise, fit multinomial logistic regression, fold the scaling into (W: D x K, b: K) (train.probe)."""
    from .probe import fit_linear_head

    if sorted(set(y.tolist())) != list(range(k)):
        raise DataError(f"every type needs training pictures in each fold; present: {sorted(set(y.tolist()))}")
    w, b = fit_linear_head(x, y, c, balanced=False, seed=seed)
    return w.astype(np.float32), b.astype(np.float32)


def softmax_head(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64) @ w + b
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _training_rows(f: Features, idx: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = [f.clean[idx]] + [a[idx] for a in f.augmented]
    return np.concatenate(xs), np.tile(y[idx], len(xs))


def cross_validate(f: Features, y: np.ndarray, groups: np.ndarray, labels: list[str], cfg: TypesConfig) -> dict[str, Any]:
    """Repeated stratified k-fold, grouped by source: per-fold top-1, top-3 and macro-F1
    (scikit-learn), their mean and sd, and the out-of-fold confusion matrix of the first repeat."""
    from sklearn.metrics import confusion_matrix, f1_score, top_k_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold

    k = len(labels)
    folds: list[dict[str, float]] = []
    oof = np.zeros((len(y), k))
    for r in range(cfg.repeats):
        splitter = StratifiedGroupKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed + r)
        for tr, te in splitter.split(f.clean, y, groups):
            assert not set(groups[tr]) & set(groups[te])  # a source never on both sides
            w, b = _fit_head(*_training_rows(f, tr, y), k, cfg.c, cfg.seed)
            p = softmax_head(f.clean[te], w, b)
            if r == 0:
                oof[te] = p
            majority = np.bincount(y[tr], minlength=k).argmax()  # the baseline that ignores the picture
            folds.append(
                {
                    "n": int(len(te)),
                    "majority_top1": float(np.mean(y[te] == majority)),
                    "top1": float(np.mean(p.argmax(1) == y[te])),
                    "top3": float(top_k_accuracy_score(y[te], p, k=3, labels=np.arange(k))),
                    "macro_f1": float(f1_score(y[te], p.argmax(1), average="macro", labels=np.arange(k), zero_division=0)),
                }
            )
    summary = {
        key: {"mean": float(np.mean([d[key] for d in folds])), "sd": float(np.std([d[key] for d in folds], ddof=1))}
        for key in ("top1", "top3", "macro_f1", "majority_top1")
    }
    oof_metrics = compute_metrics(y, oof, labels, "multiclass", ci=False)
    return {
        "scheme": f"{cfg.repeats}x stratified {cfg.folds}-fold, grouped by source (no picture or copy in two folds)",
        "folds": folds,
        **summary,
        "chance_top1": 1.0 / k,
        "chance_top3": 3.0 / k,
        "out_of_fold": {
            "n": int(len(y)),
            "per_class": oof_metrics["per_class"],
            "confusion": {
                "labels": labels,
                "matrix": confusion_matrix(y, oof.argmax(1), labels=np.arange(k)).tolist(),
                "repeat": 0,
            },
        },
    }


def accuracy_statement(cv: dict[str, Any], k: int) -> str:
    """The sentence that travels with every type answer (card, CLI, server)."""
    t1, t3 = cv["top1"], cv["top3"]
    text = (
        f"top-1 {t1['mean']:.2f} ± {t1['sd']:.2f} (top-3 {t3['mean']:.2f}) in grouped cross-validation on "
        f"{cv['out_of_fold']['n']} web pictures; {CHANCE_NOTE.format(k=k, chance=1.0 / k)}, always answering the "
        f"most frequent type {cv['majority_top1']['mean']:.2f}"
    )
    if t1["mean"] < WEAK_TOP1:
        text += "; a guess, not a finding"
    return text


def _drop_conflicts(g: SourceGroups) -> tuple[list[Path], list[str], np.ndarray, list[str]]:
    bad = g.conflicting()
    keep = [i for i in range(len(g.paths)) if i not in bad]
    return [g.paths[i] for i in keep], [g.labels[i] for i in keep], g.group[keep], [str(g.paths[i]) for i in sorted(bad)]


def train_types(cfg: TypesConfig) -> Bundle:
    """Audit, group, extract features, cross-validate, fit the final head on everything, write the bundle."""
    t_start = time.perf_counter()
    out = Path(cfg.out)
    base = load_bundle(cfg.base)
    groups = source_groups(cfg.data, near_corr=cfg.near_corr)
    paths, names, group, dropped = _drop_conflicts(groups)
    labels = sorted(set(groups.labels))
    if len(labels) < 2:
        raise DataError(f"need at least two types, found {labels}", cfg.data)
    y = np.array([labels.index(n) for n in names], dtype=np.int64)
    canvases, kept, bad = load_canvases(paths, base.spec, skip_bad=True)
    if bad:  # source_groups decoded them already; a file changed in between
        raise DataError(f"{len(bad)} pictures became unreadable during training", bad[0][0])
    feats = extract_features(base, canvases, cfg.views, cfg.augment, cfg.seed)
    t_feat = time.perf_counter() - t_start
    cv = cross_validate(feats, y, group, labels, cfg)
    w, b = _fit_head(*_training_rows(feats, np.arange(len(y)), y), len(labels), cfg.c, cfg.seed)
    model = _with_head(base, w, b, len(labels))
    # the final model must compute what the head was fitted to: same features, same softmax
    check = softmax_head(feats.clean[:16], w, b)
    got = model.predict(normalize(canvases[:16], base.spec), verbose=0)
    if not np.allclose(check, got, atol=1e-4):
        raise RuntimeError("the assembled model disagrees with its fitted head")
    statement = accuracy_statement(cv, len(labels))
    confusion_png = plots.confusion(
        {"out-of-fold (repeat 1)": (labels, cv["out_of_fold"]["confusion"]["matrix"])}, out / "confusion.png"
    )
    rng = np.random.default_rng(cfg.seed)
    calib = canvases[np.sort(rng.permutation(len(canvases))[:64])]
    card = ModelCard(
        # a base whose backbone is named (a frozen ImageNet backbone) shares it: the types bundle names it too
        Contract.create(base.arch, "multiclass", labels, None, 0.5, base.spec, backbone=base.card.contract.backbone),
        model_id=cfg.model_id,
        gradcam_layer=base.card.gradcam_layer,
        params=int(model.count_params()),
        training={
            **asdict(cfg),
            "method": "frozen backbone of the base bundle + multinomial logistic regression on pooled features "
            "of the clean picture and augmented views (scikit-learn), folded into the dense head",
            "base_bundle": {"model_id": base.model_id, "sha256": base.sha256},
            "augmentation": describe(load_augmentation(cfg.augment, base.spec.pad_value)),
            "feature_seconds": round(t_feat, 1),
            "seconds": round(time.perf_counter() - t_start, 1),
        },
        data={
            "root": str(cfg.data),
            "n": int(len(y)),
            "counts": {lbl: int((y == i).sum()) for i, lbl in enumerate(labels)},
            "source_groups": int(len(set(group.tolist()))),
            "unreadable": groups.unreadable,
            "left_out_label_conflicts": dropped,
            "joined_pairs": {r: sum(1 for p in groups.pairs if p["reason"] == r) for r in ("exact", "near", "name")},
        },
        metrics={"cv": cv},
        extra={"accuracy_statement": statement, "weak": bool(cv["top1"]["mean"] < WEAK_TOP1)},
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    log.info("types: %s", statement)
    return save_bundle(out / "bundle", model, card, extra={"confusion.png": confusion_png}, calibration=calib)


def _with_head(base: Bundle, w: np.ndarray, b: np.ndarray, k: int) -> Any:  # keras.Model
    """The base architecture with k softmax outputs: backbone weights copied, the fitted head set."""
    from edge.core.architectures import get_arch

    src = base.load_model()
    model = get_arch(base.arch).build(tuple(base.spec.input_shape), k)
    for layer in model.layers:
        if layer.name == "head_out":
            layer.set_weights([w, b])
        elif layer.weights:
            layer.set_weights(src.get_layer(layer.name).get_weights())
    return model
