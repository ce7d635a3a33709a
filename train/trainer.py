"""The trainer: data in, a model bundle out.

A run directory holds everything needed to resume after a crash or kill: per-phase backups
written every epoch (keras BackupAndRestore: weights, optimizer state, epoch), the best
weights so far, CSV and TensorBoard logs, and ``state.json`` recording finished phases.
Running the same command again continues where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core import plots
from edge.core._tf import keras, tf
from edge.core.bundle import Bundle, save_bundle, to_probabilities
from edge.core.card import Contract, ModelCard
from edge.core.data import Dataset, discover, load_canvases, positive_label
from edge.core.errors import DataError, EdgeError
from edge.core.fsutil import write_json
from edge.core.metrics import choose_threshold, compute_metrics
from edge.core.preprocess import PreprocessSpec
from edge.core.progress import bar

from .augment import Augmenter, describe, load_augmentation
from .imbalance import check_mode, class_weights, loss_for
from .models import create_model, get_arch, set_backbone_trainable
from .pipeline import BatchPlan, eval_inputs, targets_for, train_dataset

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/train"
    arch: str = "custom"
    task: str | None = None  # binary | multiclass; None: binary for 2 classes
    positive: str | None = None
    size: int = 224
    channels: int | None = None
    weights: str = "none"  # none | imagenet | path
    epochs: int = 20
    warmup_epochs: int = 3  # head-only epochs before fine-tuning (pretrained backbones)
    batch_size: int = 32
    lr: float = 1e-3
    finetune_lr: float = 1e-4
    weight_decay: float = 1e-4
    dropout: float = 0.3
    imbalance: str = "class_weight"
    augment: str = "radiograph"
    patience: int = 6
    val_fraction: float = 0.15
    target_sensitivity: float = 0.90
    seed: int = 0
    skip_bad: bool = False
    max_per_class: int | None = None  # cap images per class and split (quick runs, tests)
    calibration_samples: int = 64
    strategy: str = "auto"
    model_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def fingerprint(ds: Dataset) -> dict[str, Any]:
    """A hash of what was trained on: relative paths, sizes, labels and splits."""
    h = hashlib.sha256()
    for s in sorted(ds.samples, key=lambda s: str(s.path)):
        rel = os.path.relpath(s.path, ds.root)
        h.update(f"{s.split}|{s.label}|{rel}|{s.path.stat().st_size}\n".encode())
    return {"sha256": h.hexdigest(), "n": len(ds), "counts": ds.counts()}


def _carve_val(ds: Dataset, fraction: float, seed: int) -> Dataset:
    """Stratified validation split when the data has none."""
    rng = np.random.default_rng(seed)
    out = []
    for label in ds.classes:
        group = [s for s in ds.samples if s.label == label and s.split in (None, "train")]
        order = rng.permutation(len(group))
        n_val = max(1, int(round(fraction * len(group))))
        for rank, i in enumerate(order):
            s = group[i]
            out.append(type(s)(s.path, s.label, "val" if rank < n_val else "train"))
    out += [s for s in ds.samples if s.split not in (None, "train")]
    return Dataset(out, ds.classes, ds.root)


def _strategy(name: str) -> tf.distribute.Strategy:
    if name == "auto":
        if "TF_CONFIG" in os.environ:
            return tf.distribute.MultiWorkerMirroredStrategy()
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise EdgeError(f"unknown strategy '{name}'", hint="auto, default, mirrored or multiworker")


def _cosine(base_lr: float, epochs: int):
    def schedule(epoch: int, _lr: float) -> float:
        if epochs <= 1:
            return base_lr
        warm = 1 if epochs > 3 else 0
        if epoch < warm:
            return base_lr * 0.3
        t = (epoch - warm) / max(1, epochs - warm - 1)
        return float(base_lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(t, 1.0)))))

    return schedule


def _best_so_far(csv_path: Path, key: str) -> float | None:
    if not csv_path.exists():
        return None
    with open(csv_path) as f:
        vals = [float(r[key]) for r in csv.DictReader(f) if r.get(key) not in (None, "", "nan")]
    return max(vals) if vals else None


def train(cfg: TrainConfig, progress: bool | None = None, callbacks: list | None = None) -> Bundle:
    """Train one model end to end and write its bundle to ``<out>/bundle``.

    ``callbacks`` are added to every phase (after the checkpointing ones)."""
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    check_mode(cfg.imbalance)
    info = get_arch(cfg.arch)
    keras.utils.set_random_seed(cfg.seed)

    state_path = run / "state.json"
    cfg_dict = asdict(cfg)
    state: dict[str, Any] = {"config": cfg_dict, "phases_done": []}
    if state_path.exists():
        prev = json.loads(state_path.read_text())
        # epochs and patience may change on resume (to extend or cut a run short); the rest may not
        changed = {k for k in cfg_dict if k not in ("out", "epochs", "patience") and prev["config"].get(k) != cfg_dict[k]}
        if changed:
            raise EdgeError(f"run directory holds a run with other settings ({', '.join(sorted(changed))})", run,
                            "use another --out or delete the directory")
        state = prev
        log.info("resuming run in %s (phases done: %s)", run, state["phases_done"] or "none")

    # ---- data ---------------------------------------------------------------------------
    ds = discover(cfg.data).capped(cfg.max_per_class, cfg.seed)
    if "val" not in ds.splits:
        ds = _carve_val(ds, cfg.val_fraction, cfg.seed)
    classes = ds.classes
    task = cfg.task or ("binary" if len(classes) == 2 else "multiclass")
    if task == "binary" and len(classes) != 2:
        raise DataError(f"binary task needs exactly 2 classes, found {classes}", cfg.data, "use --task multiclass")
    pos = positive_label(classes, cfg.positive) if task == "binary" else None
    spec = PreprocessSpec.for_arch(cfg.arch, cfg.size, cfg.channels or info.default_channels)
    bad_all: list[tuple[str, str]] = []

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        part = ds.split(split)
        if not len(part):
            return np.zeros((0, *spec.size), np.uint8), np.zeros(0, np.int64)
        paths = [s.path for s in part.samples]
        canv, kept, bad = load_canvases(paths, spec, skip_bad=cfg.skip_bad,
                                        progress=lambda it: bar(it, f"decode {split}", len(paths), progress))
        bad_all.extend(bad)
        idx = part.labels_index(classes)[kept]
        if task == "binary":
            idx = (np.asarray(classes)[idx] == pos).astype(np.int64)  # 1 = positive
        return canv, idx

    try:
        x_tr, y_tr = load("train")
        x_va, y_va = load("val")
        x_te, y_te = load("test") if "test" in ds.splits else (None, None)
    except EdgeError as e:
        if not cfg.skip_bad:
            e.hint = (e.hint + "; " if e.hint else "") + "or pass --skip-bad to leave bad files out and list them"
        raise
    if bad_all:
        write_json(run / "skipped_files.json", [{"path": p, "problem": why} for p, why in bad_all])
        log.warning("skipped %d unreadable files (listed in %s)", len(bad_all), run / "skipped_files.json")
    n_classes = len(classes)
    n_out = 1 if task == "binary" else n_classes
    if len(x_tr) == 0 or len(x_va) == 0:
        raise DataError("need images in both the training and validation splits", cfg.data)
    label_space = 2 if task == "binary" else n_classes
    class_w = class_weights(y_tr, label_space)
    sample_w = np.array([class_w[int(c)] for c in y_tr], np.float32) if cfg.imbalance == "class_weight" else None
    aug_pipe = load_augmentation(cfg.augment, spec.pad_value)
    augmenter = Augmenter(aug_pipe)

    # ---- model --------------------------------------------------------------------------
    strategy = _strategy(cfg.strategy)
    with strategy.scope():
        model = create_model(cfg.arch, spec.input_shape, n_out, weights=cfg.weights, dropout=cfg.dropout)
    pretrained = cfg.weights not in ("none", None) and info.pretrained
    phases = [("warmup", cfg.warmup_epochs, cfg.lr), ("finetune", cfg.epochs, cfg.finetune_lr)] if pretrained \
        else [("all", cfg.epochs, cfg.lr)]

    y_tr_t, y_va_t = targets_for(y_tr, n_classes, task), targets_for(y_va, n_classes, task)
    x_va_in = eval_inputs(x_va, spec)
    verbose = 1 if (progress if progress is not None else sys.stdout.isatty()) else 2

    for phase, epochs, lr in phases:
        weights_done = run / f"phase_{phase}.weights.h5"
        if phase in state["phases_done"] and weights_done.exists():
            model.load_weights(str(weights_done))
            continue
        set_backbone_trainable(model, cfg.arch, phase)
        with strategy.scope():
            model.compile(
                optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay),
                loss=loss_for(task, cfg.imbalance, y_tr),
                metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="acc") if task == "binary"
                         else keras.metrics.CategoricalAccuracy(name="acc")],
            )
        plan = BatchPlan(y_tr, cfg.batch_size, cfg.seed + len(phase), balanced=cfg.imbalance == "oversample")
        csv_log = run / f"log_{phase}.csv"
        best_path = run / f"best_{phase}.weights.h5"
        best = _best_so_far(csv_log, "val_auc")
        phase_callbacks = [
            keras.callbacks.BackupAndRestore(str(run / "backup" / phase)),
            keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_auc", mode="max", save_best_only=True,
                                            save_weights_only=True, initial_value_threshold=best),
            keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=cfg.patience),
            keras.callbacks.LearningRateScheduler(_cosine(lr, epochs)),
            keras.callbacks.CSVLogger(str(csv_log), append=True),
            keras.callbacks.TensorBoard(str(run / "tensorboard" / phase), write_graph=False, profile_batch=0),
        ]
        phase_callbacks += list(callbacks or [])
        # the plan must know the epoch a resumed run starts at, so batches stay reproducible
        plan.epoch = _rows(csv_log)
        train_ds = train_dataset(x_tr, y_tr_t, spec, plan, augmenter, sample_w)
        model.fit(train_ds, validation_data=(x_va_in, y_va_t), epochs=epochs, callbacks=phase_callbacks, verbose=verbose)
        if best_path.exists():
            model.load_weights(str(best_path))
        model.save_weights(str(weights_done))
        state["phases_done"].append(phase)
        write_json(state_path, state)
    write_json(state_path, state)

    # ---- operating point and honest metrics ------------------------------------------------
    p_va = model.predict(x_va_in, batch_size=64, verbose=0)
    probs_va = to_probabilities(p_va, task, classes, pos)
    yva_idx = _to_label_index(y_va, task, classes, pos)
    threshold = choose_threshold(yva_idx == classes.index(pos), probs_va[:, classes.index(pos)], cfg.target_sensitivity) \
        if task == "binary" else 0.5
    metrics = {"val": compute_metrics(yva_idx, probs_va, classes, task, pos, threshold)}
    if x_te is not None and len(x_te):
        p_te = model.predict(eval_inputs(x_te, spec), batch_size=64, verbose=0)
        metrics["test"] = compute_metrics(_to_label_index(y_te, task, classes, pos), to_probabilities(p_te, task, classes, pos),
                                          classes, task, pos, threshold)
    curves = plots.training_curves(sorted(run.glob("log_*.csv")), run / "curves.png")

    rng = np.random.default_rng(cfg.seed)
    calib = x_tr[np.sort(rng.permutation(len(x_tr))[: cfg.calibration_samples])]
    policy = {"target_sensitivity": cfg.target_sensitivity, "chosen_on": "val"} if task == "binary" else None
    card = ModelCard(
        Contract.create(cfg.arch, task, classes, pos, threshold, spec, policy),
        model_id=cfg.model_id or f"{Path(cfg.data).name}-{cfg.arch}",
        gradcam_layer=info.gradcam_layer,
        params=int(model.count_params()),
        training={**cfg_dict, "augmentation": describe(aug_pipe), "phases": [p[0] for p in phases],
                  "class_weights": class_w if cfg.imbalance == "class_weight" else None,
                  "tensorflow": tf.__version__, "skipped_files": len(bad_all)},
        imbalance=cfg.imbalance,
        data=fingerprint(ds),
        metrics=metrics,
    )
    extra = {"curves.png": curves} if curves else {}
    return save_bundle(run / "bundle", model, card, extra=extra, calibration=calib)


def _rows(csv_path: Path) -> int:
    if not csv_path.exists():
        return 0
    with open(csv_path) as f:
        return sum(1 for _ in csv.DictReader(f))


def _to_label_index(y: np.ndarray, task: str, classes: list[str], pos: str | None) -> np.ndarray:
    if task != "binary":
        return y
    pi = classes.index(pos)
    return np.where(y == 1, pi, 1 - pi)
