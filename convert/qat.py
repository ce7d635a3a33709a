"""`edge compress`: quantization-aware fine-tuning and magnitude pruning -> a new bundle.

QAT inserts fake-quant ops (tensorflow-model-optimization, Keras 2 only) so the network learns
weights that survive int8; `edge convert --int8` then uses the learned ranges instead of a
calibration pass. Pruning zeroes the smallest weights on a polynomial-decay schedule; the
wrappers are stripped before QAT, and when both are asked the prune-preserving QAT scheme
keeps the zeros. The new bundle records what was done and the metrics before and after.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.core._tf import keras, tf
from edge.core.bundle import Bundle, load_bundle, save_bundle
from edge.core.data import Dataset, discover, load_canvases
from edge.core.errors import DataError, EdgeError
from edge.core.inference import decisions
from edge.core.metrics import compute_metrics
from edge.core.preprocess import normalize
from edge.core.progress import bar

log = logging.getLogger(__name__)


@dataclass
class CompressConfig:
    data: str
    out: str
    qat: bool = True
    prune: float | None = None  # final sparsity, e.g. 0.5
    epochs: int = 2
    prune_epochs: int | None = None  # default: same as epochs
    batch_size: int = 16
    # A small LR: QAT starts from a trained model and only has to absorb the rounding noise; 1e-4
    # moved the default model's AUROC by 0.01 in one epoch (bench convert, previous recipe).
    lr: float = 1e-5
    # Self-distillation: the targets are the source float model's own outputs, so QAT learns to
    # reproduce that model (its class weighting and hence its operating threshold included)
    # instead of re-fitting the hard labels without the class weights it was trained with.
    distill: bool = True
    # BatchNorm statistics stay as trained: batch-16 statistics drift them otherwise.
    freeze_bn: bool = True
    calibration_images: int = 512  # images whose activation ranges seed the QAT ranges
    max_per_class: int | None = None  # quick runs and tests
    skip_bad: bool = True
    seed: int = 0


def _targets(y_idx: np.ndarray, bundle: Bundle) -> np.ndarray:
    if bundle.task == "binary":
        return (y_idx == bundle.positive_index()).astype(np.float32)[:, None]
    return np.eye(len(bundle.labels), dtype=np.float32)[y_idx]


def _load(ds: Dataset, bundle: Bundle, skip_bad: bool, name: str, progress: bool | None) -> tuple[np.ndarray, np.ndarray]:
    if not len(ds):
        return np.zeros((0, *bundle.spec.size), np.uint8), np.zeros(0, np.int64)
    y = ds.labels_index(bundle.labels)  # DataError for labels the bundle does not know
    canv, kept, _ = load_canvases(
        [s.path for s in ds.samples],
        bundle.spec,
        skip_bad=skip_bad,
        progress=lambda it: bar(it, f"decode {name}", len(ds), progress),
    )
    return canv, y[kept]


def _probabilities(model, bundle: Bundle, canv: np.ndarray) -> np.ndarray:
    return bundle.probabilities(model.predict(normalize(canv, bundle.spec), batch_size=32, verbose=0))


def agreement(bundle: Bundle, p_source: np.ndarray, p_new: np.ndarray) -> dict[str, float]:
    """How often the compressed model makes the source model's decision (the one edge.core.inference
    makes: the bundle's threshold for binary models, argmax otherwise), and how far apart they are."""
    same = decisions(bundle, p_source) == decisions(bundle, p_new)
    return {"agreement": float(same.mean()), "max_abs_diff": float(np.abs(p_source - p_new).max()), "n": int(len(same))}


def sparsity(model) -> float:
    """Fraction of exactly-zero weights in conv and dense kernels."""
    zeros = total = 0
    for w in model.weights:
        if "kernel" in w.name and len(w.shape) >= 2:
            v = w.numpy()
            zeros += int((v == 0).sum())
            total += v.size
    return zeros / total if total else 0.0


def _prune(model, target: float, x, y, cfg: CompressConfig, loss, verbose: int = 0) -> Any:
    import tensorflow_model_optimization as tfmot

    epochs = cfg.prune_epochs or cfg.epochs
    steps = max(1, int(np.ceil(len(x) / cfg.batch_size))) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=target, begin_step=0, end_step=max(1, steps - 1), frequency=max(1, steps // 10)
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=loss)
    pruned.fit(
        x, y, batch_size=cfg.batch_size, epochs=epochs, verbose=verbose, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()]
    )
    return tfmot.sparsity.keras.strip_pruning(pruned)


def _quantize(model, keep_sparsity: bool):
    import tensorflow_model_optimization as tfmot

    q = tfmot.quantization.keras
    if keep_sparsity:
        annotated = q.quantize_annotate_model(model)
        return q.quantize_apply(annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    return q.quantize_model(model)


_RANGE_VAR = re.compile(r"^quant_(?P<layer>.+)/(?P<kind>output|post_activation|pre_activation)_(?P<end>min|max):0$")
_INPUT_RANGE_VAR = re.compile(r"quantize_layer(?:_\d+)?_(min|max):0$")  # the model input's own quantizer


def calibrate_ranges(qat_model, float_model, x: np.ndarray, batch_size: int = 8) -> int:
    """Start every activation range of ``qat_model`` at the range the float model really has.

    tfmot starts each activation range at [-6, 6] and moves it by an EMA with decay 0.999, so a
    short fine-tune trains against ranges that are still mostly the initial guess (clipping
    large activations, wasting levels on small ones); that is what moved the QAT model away from
    the float one. Seeding them with the min/max over real images (as post-training calibration
    does) makes the QAT model start where PTQ ends. Returns the number of ranges set."""
    # Weight ranges: tfmot's LastValueQuantizer assigns them from the kernels on a training-mode
    # call (until then they are [-6, 6] too). That call would also move BatchNorm statistics and
    # step counters, so everything else it touches is put back; activation ranges are set below.
    kept = [(v, v.numpy()) for v in qat_model.non_trainable_weights if not v.name.endswith(("_min:0", "_max:0"))]
    qat_model(x[:1], training=True)
    for v, value in kept:
        v.assign(value)
    wanted: dict[str, list[Any]] = {}
    for v in qat_model.non_trainable_weights:
        m = _RANGE_VAR.match(v.name)
        if m:
            wanted.setdefault(m["layer"], []).append((m["kind"], m["end"], v))
    pre = {name for name, vs in wanted.items() if any(k == "pre_activation" for k, _, _ in vs)}

    def linear_head(layer):  # pre-activation ranges (before sigmoid/softmax) are the logits' ranges
        cfg = layer.get_config()
        if layer.name in pre and "activation" in cfg:
            cfg["activation"] = "linear"
        return layer.__class__.from_config(cfg)

    probe = keras.models.clone_model(float_model, clone_function=linear_head)
    probe.set_weights(float_model.get_weights())
    names = [n for n in wanted if n in {layer.name for layer in probe.layers}]
    taps = keras.Model(probe.inputs, [probe.get_layer(n).output for n in names])
    lows, highs = np.zeros(len(names)), np.zeros(len(names))  # 0 always inside: TFLite requires it
    for i in range(0, len(x), batch_size):  # running min/max: every activation of 512 images would not fit
        outs = taps(x[i : i + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        lows = np.minimum(lows, [float(tf.reduce_min(o)) for o in outs])
        highs = np.maximum(highs, [float(tf.reduce_max(o)) for o in outs])
    ranges = {n: (float(lo), float(hi)) for n, lo, hi in zip(names, lows, highs, strict=True)}
    count = 0
    for name, vs in wanted.items():
        if name not in ranges:
            continue
        lo, hi = ranges[name]
        for _, end, var in vs:
            var.assign(np.full(var.shape, lo if end == "min" else hi, np.float32))
            count += 1
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    for v in qat_model.non_trainable_weights:
        m = _INPUT_RANGE_VAR.search(v.name)
        if m:
            v.assign(np.full(v.shape, lo if m[1] == "min" else hi, np.float32))
            count += 1
    return count


def _fine_tune(b: Bundle, model, x: np.ndarray, t: np.ndarray, cfg: CompressConfig, loss: str, verbose: int):
    """Pruning and/or QAT on a copy of ``model`` (the source bundle's cached model is left as it was)."""
    work = keras.models.clone_model(model)
    work.set_weights(model.get_weights())
    if cfg.freeze_bn:  # a frozen BN layer runs in inference mode in tf-keras, moving statistics untouched
        for layer in work.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    if cfg.prune:
        work = _prune(work, cfg.prune, x, t, cfg, loss, verbose)
    if cfg.qat:
        try:
            work = _quantize(work, keep_sparsity=bool(cfg.prune))
        except (ValueError, RuntimeError) as e:
            raise EdgeError(
                f"quantization-aware training cannot wrap this model ({str(e).splitlines()[0][:200]})", b.path
            ) from None
        n_ranges = calibrate_ranges(work, model, x[: cfg.calibration_images])
        log.info("seeded %d activation ranges from %d images", n_ranges, min(len(x), cfg.calibration_images))
        work.compile(optimizer=keras.optimizers.Adam(cfg.lr), loss=loss)
        work.fit(x, t, batch_size=cfg.batch_size, epochs=cfg.epochs, verbose=verbose, shuffle=True)
    return work


def compress(bundle: Bundle | str | Path | None, cfg: CompressConfig, progress: bool | None = None) -> Bundle:
    """Fine-tune ``bundle`` with QAT and/or pruning on ``cfg.data`` and write a new bundle to ``cfg.out``.

    ``progress``: bars and per-epoch lines (default: when stderr is a terminal)."""
    if not cfg.qat and not cfg.prune:
        raise EdgeError("nothing to do: pass --qat, --prune SPARSITY or both")
    if cfg.prune is not None and not 0.0 < cfg.prune < 1.0:
        raise EdgeError(f"--prune takes a sparsity between 0 and 1, not {cfg.prune}")
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if b.qat:
        raise EdgeError("this bundle is already quantization-aware", b.path, "compress the float bundle it came from")
    keras.utils.set_random_seed(cfg.seed)
    ds = discover(cfg.data).capped(cfg.max_per_class, cfg.seed)
    train_part = ds.split("train") if "train" in ds.splits else ds
    eval_name = "val" if "val" in ds.splits else ("test" if "test" in ds.splits else None)
    x_tr, y_tr = _load(train_part, b, cfg.skip_bad, "train", progress)
    if len(x_tr) == 0:
        raise DataError("no readable training images for fine-tuning", cfg.data)
    evals: dict[str, tuple[np.ndarray, np.ndarray]] = {
        name: _load(ds.split(name), b, cfg.skip_bad, name, progress) for name in ("val", "test") if name in ds.splits
    }
    if not evals:  # no held-out split: report on the fine-tuning images, and say so
        evals = {"train": (x_tr, y_tr)}

    model = b.load_model()
    evals = {k: v for k, v in evals.items() if len(v[0])}
    p_before = {k: _probabilities(model, b, c) for k, (c, _) in evals.items()}
    before = {
        k: compute_metrics(y, p_before[k], b.labels, b.task, b.positive_label, b.threshold, ci=False)
        for k, (_, y) in evals.items()
    }
    verbose = 1 if (progress if progress is not None else sys.stderr.isatty()) else 0
    x = normalize(x_tr, b.spec)
    t = model.predict(x, batch_size=32, verbose=0).astype(np.float32) if cfg.distill else _targets(y_tr, b)
    loss = "binary_crossentropy" if b.task == "binary" else "categorical_crossentropy"

    work = _fine_tune(b, model, x, t, cfg, loss, verbose)
    p_after = {k: _probabilities(work, b, c) for k, (c, _) in evals.items()}
    after = {
        k: compute_metrics(y, p_after[k], b.labels, b.task, b.positive_label, b.threshold, ci=False)
        for k, (_, y) in evals.items()
    }
    agree = {k: agreement(b, p_before[k], p_after[k]) for k in evals}

    compression = {
        "prune": cfg.prune,
        "sparsity": sparsity(work),
        "source_bundle_sha256": b.sha256,
        "source_model_id": b.model_id,
        "config": asdict(cfg),
        "eval_split": eval_name or "train",
        "metrics_before": before,
        "metrics_after": after,
        "agreement_with_source": agree,
        "tfmot": _tfmot_version(),
        "tensorflow": tf.__version__,
    }
    # the same contract (labels, threshold, preprocessing) with the graph now quantization-aware
    card = replace(
        b.card,
        contract=replace(b.card.contract, qat=cfg.qat, backbone=None),  # compression trains the backbone: stored whole
        model_id=f"{b.model_id}-{'qat' if cfg.qat else 'pruned'}",
        metrics=after,
        compression=compression,
        created=None,
        files={},
        bundle_sha256="",
    )
    out = save_bundle(cfg.out, work, card, calibration=b.calibration_canvases())
    log.info("compressed bundle: %s", out.path)
    return out


def _tfmot_version() -> str:
    import tensorflow_model_optimization as tfmot

    return tfmot.__version__
