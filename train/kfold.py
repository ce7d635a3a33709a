"""Out-of-fold scores for a trained network, and its refit on train + val (``edge train --oof-folds K``).

Why: the operating threshold must keep sensitivity >= 0.90 under a lower confidence bound, and
FracAtlas' validation split holds 64 fractures. With so few, the bound forces the threshold down
until nearly every fracture is kept, and specificity pays (the first fine-tuned EfficientNet-Lite0:
test sensitivity 0.97, specificity 0.50). Scoring every train+val image with a model that never
trained on it gives the rule about 500 fractures instead of 64.

The scheme (the probe recipe's, train.probe, for a network that takes minutes per fold):

1. the ordinary run (train on train, best epoch by val AUROC) fixes the number of epochs;
2. K models, each trained with that recipe for those epochs (no early stopping, no best-epoch
   choice: nothing held out steers them) on train+val minus one fold, score their fold; folds keep
   blocks of consecutive file numbers together (FracAtlas: often one patient's views);
3. the final model is trained the same way on all of train+val; Platt scaling and the threshold
   are fitted on the out-of-fold logits (train.calibrate.fit_out_of_fold). The test split is only
   measured.

Every fold is its own resumable run directory (``OUT/fold<k>``, ``OUT/refit``).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.fsutil import write_json

from . import distribute
from .augment import Augmenter
from .calibrate import logits
from .imbalance import class_weights
from .models import create_model
from .pipeline import eval_inputs
from .probe import fold_groups

log = logging.getLogger(__name__)


def fixed_phases(run: Path, phases: list[tuple[str, int, float]]) -> list[tuple[str, int, float, int]]:
    """(phase, epochs to run, schedule length, lr): earlier phases as planned, the last one cut at the
    ordinary run's best validation epoch (its log), on the same schedule."""
    out = []
    for i, (phase, epochs, lr) in enumerate(phases):
        run_epochs = epochs
        if i == len(phases) - 1:
            with open(run / f"log_{phase}.csv") as f:
                rows = list(csv.DictReader(f))
            aucs = [float(r["val_auc"]) for r in rows if r.get("val_auc") not in (None, "", "nan")]
            run_epochs = int(np.argmax(aucs)) + 1 if aucs else epochs
        out.append((phase, run_epochs, lr, epochs))
    return out


def _state(run: Path, cfg: Any) -> dict[str, Any]:
    import json

    p = run / "state.json"
    if p.is_file():
        return json.loads(p.read_text())
    return {"config": dataclasses.asdict(cfg), "phases_done": []}


def _train_fixed(cfg: Any, run: Path, data: Any, plan: list[tuple[str, int, float, int]], strategy: Any, aug: Any, progress: Any):
    from .trainer import _fit_phase

    run.mkdir(parents=True, exist_ok=True)
    state = _state(run, cfg)
    with strategy.scope():
        model = create_model(cfg.arch, data.spec.input_shape, data.n_out, weights=cfg.weights, dropout=cfg.dropout)
    class_w = class_weights(data.y_tr, 2 if data.task == "binary" else len(data.classes))
    for phase, epochs, lr, schedule in plan:
        _fit_phase(cfg, run, state, model, strategy, (phase, epochs, lr), data, Augmenter(aug), class_w, progress, None, schedule)
    return distribute.local_model(model, strategy)


def oof_and_refit(
    cfg: Any, run: Path, data: Any, phases: list[tuple[str, int, float]], strategy: Any, aug: Any, progress: Any
) -> tuple[Any, tuple[np.ndarray, np.ndarray], dict[str, Any]]:
    """(final model trained on train+val, (out-of-fold logits, labels) of train+val, a record for the card)."""
    from sklearn.model_selection import StratifiedGroupKFold

    plan = fixed_phases(run, phases)
    x = np.concatenate([data.x_tr, data.x_va])
    y = np.concatenate([data.y_tr, data.y_va])
    boxes = None if data.box_tr is None else list(data.box_tr) + list(data.box_va or [])
    groups = fold_groups(list(data.paths_tr) + list(data.paths_va))
    empty = x[:0]
    oof = np.zeros((len(y),) if data.task == "binary" else (len(y), len(data.classes)))
    folds = list(StratifiedGroupKFold(cfg.oof_folds, shuffle=True, random_state=cfg.seed).split(x, y, groups))
    for k, (tr, te) in enumerate(folds):
        sub_run = run / f"fold{k}"
        done = sub_run / "oof_logits.npy"
        if done.is_file():
            oof[te] = np.load(done)
            continue
        log.info("fold %d/%d: training on %d images, scoring %d", k + 1, len(folds), len(tr), len(te))
        sub = dataclasses.replace(
            data, x_tr=x[tr], y_tr=y[tr], box_tr=None if boxes is None else [boxes[i] for i in tr],
            x_va=x[te], y_va=y[te], x_te=None, y_te=None,
        )  # fmt: skip
        model = _train_fixed(cfg, sub_run, sub, plan, strategy, aug, progress)
        oof[te] = logits(model, eval_inputs(x[te], data.spec))
        tmp = sub_run / "oof_logits.tmp.npy"
        np.save(tmp, oof[te])
        tmp.rename(done)
    full = dataclasses.replace(data, x_tr=x, y_tr=y, box_tr=boxes, x_va=empty, y_va=y[:0])
    final = _train_fixed(cfg, run / "refit", full, plan, strategy, aug, progress)
    record = {
        "folds": len(folds),
        "scheme": f"train+val, {len(folds)}-fold, grouped by blocks of consecutive file numbers",
        "epochs": {p: e for p, e, _lr, _s in plan},
        "fold_sizes": [int(len(te)) for _tr, te in folds],
        "positives": int((y == 1).sum()) if data.task == "binary" else None,
    }
    write_json(run / "kfold.json", record)
    return final, (oof, y), record
