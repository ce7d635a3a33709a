"""`edge validate`: does the phone model still say what the full model says, fast enough?

Both models see the same labelled images through the same preprocessing (the bundle's spec;
the .tflite's own spec decides its input quantisation). The report compares their metrics,
their agreement, their latency and size, and checks them against thresholds that a repository
keeps in ``[tool.edge.validate]`` of its pyproject.toml.

report.json schema (format "fracture-edge/validation", version 1; keys are stable, new keys
may be added)::

    format, version, created
    passed: bool                     every check held
    failures: [str]                  one plain sentence per failed check
    checks: {name: {value, limit, op, passed}}   accuracy_drop, auroc_drop, agreement,
                                     latency_ms, size_mb, source, contract (null limit = not checked;
                                     contract: value = the decision fields where the .tflite's spec
                                     differs from the bundle: threshold, labels, positive label, preprocessing)
    thresholds: {max_accuracy_drop, max_auroc_drop, min_agreement, max_latency_ms, max_size_mb, source}
    data: {root, n, skipped: [{path, problem}], counts}
    full, edge: {model_id, file, sha256, precision, n, accuracy, precision_score (=precision), recall,
                 f1, auroc, sensitivity, specificity, threshold, per_class, confusion}
    drift: {accuracy, precision, recall, f1, auroc, sensitivity, specificity   (edge minus full),
            per_class: {label: {precision, recall, f1}}, subgroups: {name: {n, full, edge, drift}}}
    agreement: float                 top-1 (decision at the threshold for binary) agreement in 0..1
    paired: {n, n_bootstrap, level, auroc, sensitivity, specificity} (binary) or {..., accuracy}:
                                     edge minus full on the same images, each {difference, ci} with a
                                     paired bootstrap interval; the rates also {only_b (right only by the
                                     edge model), only_a (only by the full one), p_mcnemar}
    prob_diff: {mean, p99, max}      |P_edge - P_full| over images (all classes)
    disagreements: [{path, label, full, edge, p_full, p_edge}]   (at most 200)
    latency_ms: {full: {p50, p90, p99, mean, throughput_per_s, runs}, edge: {...}, warmup, threads,
                 source: "measured" | "device"}
    memory_mb: {full_rss_increase, edge_rss_increase, process_peak}
    size_bytes: {full, edge}
    timing_s: {decode_preprocess, full_inference, edge_inference, total}
    device: {...} (only with a device report)
    plots: {confusion, prob_diff, latency} (file names in the report folder)
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from edge.app import device_report as dr
from edge.app.device_report import read_device_report
from edge.core.bundle import Bundle, load_bundle
from edge.core.data import Dataset, discover, load_canvases, read_metadata
from edge.core.errors import DataError, EdgeError
from edge.core.inference import decisions
from edge.core.metrics import compute_metrics, paired_accuracy_gap, paired_gap, subgroup_metrics
from edge.core.preprocess import normalize

REPORT_FORMAT = "fracture-edge/validation"
DEVICE_FORMAT = dr.FORMAT  # defined in edge/app/device_report.py
THRESHOLD_KEYS = ("max_accuracy_drop", "max_auroc_drop", "min_agreement", "max_latency_ms", "max_size_mb")
METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "auroc", "sensitivity", "specificity")
MAX_LISTED = 200
# used when no configuration sets a threshold: accuracy gates on, latency and size left to the project
DEFAULT_THRESHOLDS = {
    "max_accuracy_drop": 0.02,
    "max_auroc_drop": 0.01,
    "min_agreement": 0.97,
    "max_latency_ms": None,
    "max_size_mb": None,
}


class ValidationError(EdgeError):
    """Bad input to the validator (exit 2); failed checks are not errors but a report with passed=False."""


# ---- thresholds --------------------------------------------------------------------------
def find_pyproject(start: str | Path | None = None) -> Path | None:
    d = Path(start or Path.cwd()).resolve()
    for p in [d, *d.parents]:
        if (p / "pyproject.toml").is_file():
            return p / "pyproject.toml"
    return None


def load_thresholds(config: str | Path | None = None, overrides: dict[str, float | None] | None = None) -> dict[str, Any]:
    """``[tool.edge.validate]`` of ``config`` (default: the nearest pyproject.toml), then overrides."""
    import tomllib

    path = Path(config) if config else find_pyproject()
    got: dict[str, Any] = dict(DEFAULT_THRESHOLDS)
    source = "built-in defaults"
    if path is not None:
        if not path.is_file():
            raise ValidationError("configuration file not found", path)
        try:
            doc = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValidationError(f"configuration is not valid TOML ({e})", path) from None
        section = doc.get("tool", {}).get("edge", {}).get("validate", {})
        for k, v in section.items():
            key = k.replace("-", "_")
            if key not in THRESHOLD_KEYS:
                raise ValidationError(
                    f"unknown key '{k}' in [tool.edge.validate]",
                    path,
                    f"known: {', '.join(x.replace('_', '-') for x in THRESHOLD_KEYS)}",
                )
            got[key] = float(v)
        if section:
            source = str(path)
    for k, v in (overrides or {}).items():
        if v is not None:
            got[k] = float(v)
            source = source + " + command line" if "command line" not in source else source
    got["source"] = source
    return got


# ---- measuring -------------------------------------------------------------------------
def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB, from /proc (Linux)."""
    cur = peak = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return cur, peak


def latency_stats(ms: np.ndarray) -> dict[str, Any]:
    ms = np.asarray(ms, dtype=np.float64)
    if not len(ms):
        return {"p50": None, "p90": None, "p99": None, "mean": None, "throughput_per_s": None, "runs": 0, "samples": []}
    return {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
        "throughput_per_s": float(1000.0 / ms.mean()),
        "runs": int(len(ms)),
        "samples": [round(float(v), 4) for v in ms],
    }


def time_edge(edge, x_in: np.ndarray, runs: int, warmup: int) -> np.ndarray:
    """Invoke time only: the input is set once, each timed call is ``interpreter.invoke()``."""
    it = edge.interpreter
    it.set_tensor(edge.input_details[0]["index"], x_in)
    for _ in range(warmup):
        it.invoke()
    out = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter_ns()
        it.invoke()
        out[i] = (time.perf_counter_ns() - t) / 1e6
    return out


def time_full(model, x: np.ndarray, runs: int, warmup: int) -> np.ndarray:
    """One image at a time through the Keras model (a traced call, not model.predict's batching)."""
    from edge.core._tf import tf

    fn = tf.function(lambda t: model(t, training=False))
    xt = tf.constant(x[None])
    for _ in range(max(1, warmup)):
        fn(xt).numpy()
    out = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter_ns()
        fn(xt).numpy()
        out[i] = (time.perf_counter_ns() - t) / 1e6
    return out


# ---- inputs -----------------------------------------------------------------------------
def _dataset(data: str | Path, split: str | None) -> Dataset:
    ds = discover(data)
    if ds.splits:
        name = split or ("test" if "test" in ds.splits else ds.splits[-1])
        if name not in ds.splits:
            raise ValidationError(f"no '{name}' split in the data (found {', '.join(ds.splits)})", data)
        ds = ds.split(name)
    elif split:
        raise ValidationError(f"the data has no splits, so --split {split} does not apply", data)
    return ds


def _rel(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


# ---- the validator ----------------------------------------------------------------------
@dataclass
class ValidationConfig:
    """What to compare, on what, and against which limits (``validate``'s keyword arguments)."""

    data: str | Path | None = None
    full: Bundle | str | Path | None = None  # None: the embedded default bundle
    edge: str | Path | None = None  # None (and no device report): the bundle's cached int8 conversion
    metadata: str | Path | None = None
    threads: int = 2
    runs: int = 50
    warmup: int = 5
    thresholds: dict[str, Any] | None = None  # overrides of the config file
    device_report: str | Path | None = None
    report_dir: str | Path | None = None
    split: str | None = None
    config: str | Path | None = None
    max_images: int | None = None
    require_signature: str | Path | None = None  # Ed25519 public key the bundle and the .tflite must be signed with


@dataclass
class _Models:
    bundle: Bundle
    edge: Any = None  # EdgeModel
    device: dict[str, Any] | None = None
    edge_mem: float | None = None
    mismatches: list[str] = field(default_factory=list)  # decision fields where the edge model differs


@dataclass
class _Inputs:
    ds: Dataset
    paths: list[Path]  # readable images, in order
    rel: list[str]
    canv: np.ndarray  # for the full model (the bundle's preprocessing)
    canv_edge: np.ndarray  # for the edge model (its own spec; the same array when the specs agree)
    y: np.ndarray
    bad: list[tuple[str, str]]
    seconds: float


@dataclass
class _Outputs:
    p_full: np.ndarray
    p_edge: np.ndarray
    full_mem: float
    t_full: float
    t_edge: float
    dev_latency: np.ndarray | None = None


def validate(
    full: Bundle | str | Path | None = None,
    edge: str | Path | None = None,
    data: str | Path | None = None,
    progress: Callable | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Compare the edge model (a .tflite, or a phone's device report) with the full model.

    ``options`` are the other fields of ValidationConfig. Returns the report dict (schema in this
    module's docstring); ``report["passed"]`` is the gate."""
    return run_validation(ValidationConfig(data=data, full=full, edge=edge, **options), progress)


def run_validation(cfg: ValidationConfig, progress: Callable | None = None) -> dict[str, Any]:
    t_start = time.perf_counter()
    if cfg.data is None:
        raise ValidationError(
            "no data to validate on", hint="pass --data DIR (class folders, or a split tree: the test split is used)"
        )
    th = load_thresholds(cfg.config, cfg.thresholds)
    models = _load_models(cfg)
    inputs = _load_inputs(cfg, models, progress)
    outs = _run_models(models, inputs, cfg.device_report)
    report = _compare(cfg, th, models, inputs, outs)
    report["timing_s"] = {
        "decode_preprocess": inputs.seconds,
        "full_inference": outs.t_full,
        "edge_inference": outs.t_edge,
        "total": time.perf_counter() - t_start,
    }
    if cfg.report_dir is not None:
        report["plots"] = write_validation_report(cfg.report_dir, report, *report.pop("_plot_data"))
    report.pop("_plot_data", None)
    return report


def _load_models(cfg: ValidationConfig) -> _Models:
    """The bundle, the .tflite and/or the device report; signatures and the contract checked."""
    from edge.core.signing import require_signed

    bundle = cfg.full if isinstance(cfg.full, Bundle) else load_bundle(cfg.full)
    require_signed(bundle, cfg.require_signature)
    models = _Models(bundle)
    if cfg.device_report is not None:
        models.device = read_device_report(cfg.device_report, bundle.labels)
        dm = models.device.get("model") or {}
        if dm.get("bundle_sha256") and dm["bundle_sha256"] != bundle.sha256:
            raise ValidationError(
                f"device report was made with the model of bundle {dm['bundle_sha256'][:12]}…, "
                f"not this bundle ({bundle.sha256[:12]}…)",
                cfg.device_report,
                "validate against the bundle the phone's model was converted from",
            )
    edge = cfg.edge
    if edge is None and models.device is None:
        from convert.tflite import cached_int8  # lazy: the core does not depend on the conversion stage

        edge = cached_int8(bundle)  # converted here from the (verified) bundle: nothing to sign
    elif edge is not None:
        require_signed(edge, cfg.require_signature)
    if edge is not None:
        from edge.core.runtime import EdgeModel

        mem0 = _rss_mb()[0]
        models.edge = EdgeModel.load(edge, threads=cfg.threads)
        models.edge_mem = _rss_mb()[0] - mem0
        models.mismatches = models.edge.spec.mismatches(bundle, "the full model")
        _check_comparable(models.edge, bundle, models.mismatches)
        sha = ((models.device or {}).get("model") or {}).get("sha256")
        if sha and sha != models.edge.sha256:
            raise ValidationError(
                f"device report was made with another .tflite (sha256 {sha[:12]}…) than {Path(edge).name} "
                f"({models.edge.sha256[:12]}…)",
                cfg.device_report,
            )
    return models


def _check_comparable(edge_model, bundle: Bundle, mismatches: list[str]) -> None:
    """Models that answer different questions (task, label set) cannot be compared image by image:
    exit 1 with every mismatch named. Other differences (threshold, order, preprocessing) are failed checks."""
    if edge_model.task != bundle.task or sorted(edge_model.labels) != sorted(bundle.labels):
        raise ContractMismatch("; ".join(mismatches), edge_model.path)


class ContractMismatch(EdgeError):
    """The edge model's contract differs so much from the bundle's that nothing can be compared."""

    exit_code = 1


def _load_inputs(cfg: ValidationConfig, models: _Models, progress: Callable | None) -> _Inputs:
    """Decode every image once per preprocessing (once in all when the two models agree on it)."""
    t0 = time.perf_counter()
    bundle = models.bundle
    assert cfg.data is not None  # run_validation refused a missing --data
    ds = _dataset(cfg.data, cfg.split)
    if cfg.max_images and len(ds) > cfg.max_images:  # a fixed, reproducible subset
        pick = np.sort(np.random.default_rng(0).permutation(len(ds))[: cfg.max_images])
        ds = Dataset([ds.samples[i] for i in pick], ds.classes, ds.root)
    y_all = ds.labels_index(bundle.labels)  # unknown labels -> DataError (exit 2)
    paths = [s.path for s in ds.samples]
    canv, kept, bad = load_canvases(paths, bundle.spec, skip_bad=True, progress=progress)
    if len(canv) == 0:
        raise DataError(f"no readable image among {len(paths)} files", cfg.data)
    paths, y, rel = [paths[i] for i in kept], y_all[kept], [_rel(paths[i], ds.root) for i in kept]
    if models.device is not None:
        on_phone = dr.match(models.device, rel, [_rel(Path(p), ds.root) for p, _ in bad], cfg.device_report)
        canv, y = canv[on_phone], y[on_phone]
        paths, rel = [p for p, m in zip(paths, on_phone, strict=True) if m], [r for r, m in zip(rel, on_phone, strict=True) if m]
        bad = bad + [(f["path"], f["problem"]) for f in dr.failures(models.device)]
    canv_edge = canv
    if models.edge is not None and models.edge.preprocess_spec != bundle.spec:  # the phone would see its own
        canv_edge, _, _ = load_canvases(paths, models.edge.preprocess_spec, skip_bad=False)
    return _Inputs(ds, paths, rel, canv, canv_edge, y, bad, time.perf_counter() - t0)


def _run_models(models: _Models, inputs: _Inputs, device_report) -> _Outputs:
    bundle = models.bundle
    t0 = time.perf_counter()
    mem0 = _rss_mb()[0]
    p_full = bundle.predict_proba(normalize(inputs.canv, bundle.spec))
    full_mem, t_full = _rss_mb()[0] - mem0, time.perf_counter() - t0
    t0 = time.perf_counter()
    if models.device is not None:
        p_edge, dev_latency = dr.probabilities(models.device, inputs.rel, bundle.labels)
    else:
        raw = models.edge.predict_canvases(inputs.canv_edge)  # columns in the edge model's label order
        p_edge = raw[:, [models.edge.labels.index(lbl) for lbl in bundle.labels]]
        dev_latency = None
    return _Outputs(p_full, p_edge, full_mem, t_full, time.perf_counter() - t0, dev_latency)


def _edge_rule(models: _Models) -> Any:
    """How the edge model decides, in the bundle's label order: its own threshold and positive label."""
    b, e = models.bundle, models.edge
    return SimpleNamespace(
        task=b.task,
        labels=b.labels,
        positive_label=e.positive_label if e else b.positive_label,
        threshold=e.threshold if e else b.threshold,
    )


def _compare(cfg: ValidationConfig, th: dict[str, Any], models: _Models, inputs: _Inputs, outs: _Outputs) -> dict[str, Any]:
    """Metrics, drift, agreement, latency and the checks: the report (without timings)."""
    bundle, labels, y = models.bundle, models.bundle.labels, inputs.y
    rule = _edge_rule(models)
    m_full = compute_metrics(y, outs.p_full, labels, bundle.task, bundle.positive_label, bundle.threshold, ci=False)
    m_edge = compute_metrics(y, outs.p_edge, labels, bundle.task, bundle.positive_label, rule.threshold, ci=False)
    dec_full, dec_edge = decisions(bundle, outs.p_full), decisions(rule, outs.p_edge)
    agree = float((dec_full == dec_edge).mean())
    diff = np.abs(outs.p_edge - outs.p_full).max(axis=1)
    drift: dict[str, Any] = {k: _sub(m_edge.get(k), m_full.get(k)) for k in METRIC_KEYS}
    drift["per_class"] = {
        c: {k: _sub(m_edge["per_class"][c][k], m_full["per_class"][c][k]) for k in ("precision", "recall", "f1")}
        for c in labels
        if c in m_full.get("per_class", {})
    }
    drift["subgroups"] = _subgroups(cfg.metadata, inputs.paths, y, outs.p_full, outs.p_edge, bundle, bundle.threshold)
    latency, lat_full, lat_edge = _latency(cfg, models, inputs, outs)
    size_edge = models.edge.size_bytes if models.edge is not None else None
    checks = _checks(th, m_full, m_edge, agree, latency["edge"]["p50"], size_edge, models)
    failures = [msg for c in checks.values() if c["passed"] is False for msg in c["messages"]]
    return {
        "format": REPORT_FORMAT,
        "version": 1,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "passed": not failures,
        "failures": failures,
        "checks": {k: {kk: vv for kk, vv in v.items() if kk != "messages"} for k, v in checks.items()},
        "thresholds": th,
        "data": {
            "root": str(inputs.ds.root),
            "n": int(len(y)),
            "skipped": [{"path": p, "problem": w} for p, w in inputs.bad],
            "counts": {lbl: int((y == i).sum()) for i, lbl in enumerate(labels)},
        },
        "full": _model_summary(m_full, bundle.model_id, str(bundle.path), bundle.sha256, "float32 (Keras)"),
        "edge": _edge_summary(m_edge, models, cfg.device_report),
        "drift": drift,
        "agreement": agree,
        "paired": _paired(bundle, rule, y, outs, dec_full, dec_edge),
        "prob_diff": {"mean": float(diff.mean()), "p99": float(np.percentile(diff, 99)), "max": float(diff.max())},
        "disagreements": _disagreements(inputs, outs, bundle, dec_full, dec_edge),
        "latency_ms": latency,
        "memory_mb": {"full_rss_increase": outs.full_mem, "edge_rss_increase": models.edge_mem, "process_peak": _rss_mb()[1]},
        "size_bytes": {"full": sum(f.stat().st_size for f in bundle.path.glob("model.h5")), "edge": size_edge},
        **(
            {"device": {k: models.device.get(k) for k in ("model", "device", "accelerator", "threads", "fallback", "created")}}
            if models.device is not None
            else {}
        ),
        "_plot_data": (m_full, m_edge, diff, lat_full, lat_edge),
    }


def _paired(bundle: Bundle, rule: Any, y: np.ndarray, outs: _Outputs, dec_full, dec_edge) -> dict[str, Any]:
    """Edge minus full on the same images with paired intervals: says whether a drift is noise of a small
    set or a change (the checks themselves compare the point values with the limits)."""
    if bundle.task == "binary":
        pi, pe = bundle.positive_index(), bundle.labels.index(rule.positive_label)
        return paired_gap(y == pi, outs.p_full[:, pi], outs.p_edge[:, pe], (bundle.threshold, rule.threshold))
    return paired_accuracy_gap(dec_full == y, dec_edge == y)  # the gate's own decisions, already made


def _edge_summary(m_edge, models: _Models, device_report) -> dict[str, Any]:
    e, dm = models.edge, ((models.device or {}).get("model") or {})
    if e is not None:
        return _model_summary(m_edge, e.spec.model_id, str(e.path), e.sha256, e.precision)
    return _model_summary(m_edge, dm.get("file"), str(device_report), dm.get("sha256"), dm.get("precision"))


def _disagreements(inputs: _Inputs, outs: _Outputs, bundle: Bundle, dec_full, dec_edge) -> list[dict[str, Any]]:
    labels, y = bundle.labels, inputs.y
    pi = bundle.positive_index() if bundle.task == "binary" else None

    def p(probs, i):
        return float(probs[i, pi] if pi is not None else probs[i].max())

    return [
        {
            "path": inputs.rel[i],
            "label": labels[y[i]],
            "full": labels[dec_full[i]],
            "edge": labels[dec_edge[i]],
            "p_full": p(outs.p_full, i),
            "p_edge": p(outs.p_edge, i),
        }
        for i in np.flatnonzero(dec_full != dec_edge)[:MAX_LISTED]
    ]


def _latency(cfg: ValidationConfig, models: _Models, inputs: _Inputs, outs: _Outputs) -> tuple[dict[str, Any], np.ndarray, Any]:
    bundle = models.bundle
    lat_full = time_full(bundle.load_model(), normalize(inputs.canv[0], bundle.spec), cfg.runs, cfg.warmup)
    if outs.dev_latency is not None:  # set exactly when the edge results come from a device report
        lat_edge, source = outs.dev_latency, "device"
    else:
        x_edge = normalize(inputs.canv_edge[0], models.edge.preprocess_spec)
        lat_edge, source = time_edge(models.edge, models.edge.quantize_input(x_edge), cfg.runs, cfg.warmup), "measured"
    threads = models.device.get("threads", cfg.threads) if models.device else cfg.threads
    return (
        {
            "full": latency_stats(lat_full),
            "edge": latency_stats(lat_edge),
            "warmup": cfg.warmup,
            "threads": threads,
            "source": source,
        },
        lat_full,
        lat_edge,
    )


def _sub(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    return float(a) - float(b)


def _subgroups(metadata, paths, y, p_full, p_edge, bundle: Bundle, thr: float) -> dict[str, Any]:
    """Per-subgroup drift from a metadata CSV: each 0/1 column is a subgroup (and 'no_hardware')."""
    if metadata is None:
        return {}
    meta = read_metadata(metadata)
    rows = [meta.get(Path(p).name) for p in paths]
    if not any(rows):
        raise ValidationError("no image of the data is listed in the metadata CSV", metadata)
    cols = [c for c in next(r for r in rows if r) if all((r or {}).get(c, "0") in ("0", "1") for r in rows)]
    groups = {c: np.array([(r or {}).get(c) == "1" for r in rows]) for c in cols}
    if "hardware" in cols:  # the shortcut-free subgroup (metal implants give fractures away)
        groups["no_hardware"] = np.array([(r or {}).get("hardware") == "0" for r in rows])
    f = subgroup_metrics(y, p_full, bundle.labels, bundle.task, bundle.positive_label, thr, groups)
    e = subgroup_metrics(y, p_edge, bundle.labels, bundle.task, bundle.positive_label, thr, groups)
    out = {}
    for g in groups:
        if "note" in f[g]:
            out[g] = f[g]
            continue
        out[g] = {"n": f[g]["n"], "full": f[g], "edge": e[g], "drift": {k: _sub(e[g][k], f[g][k]) for k in METRIC_KEYS}}
    return out


def _model_summary(m: dict[str, Any], model_id, file, sha, precision) -> dict[str, Any]:
    out = {"model_id": model_id, "file": file, "sha256": sha, "precision": precision}
    out.update(
        {
            k: m.get(k)
            for k in (
                "n",
                "accuracy",
                "recall",
                "f1",
                "auroc",
                "sensitivity",
                "specificity",
                "threshold",
                "per_class",
                "confusion",
            )
        }
    )
    out["precision_score"] = m.get("precision")
    return out


def _checks(th, m_full, m_edge, agree, p50, size_edge, models: _Models) -> dict[str, dict[str, Any]]:
    def check(value, limit, op, words):
        if limit is None or value is None or (isinstance(value, float) and np.isnan(value)):
            return {"value": value, "limit": limit, "op": op, "passed": None, "messages": []}
        ok = value <= limit if op == "<=" else value >= limit
        return {"value": value, "limit": limit, "op": op, "passed": bool(ok), "messages": [words.format(v=value, l=limit)]}

    acc_drop = _sub(m_full["accuracy"], m_edge["accuracy"])
    auc_drop = _sub(m_full.get("auroc"), m_edge.get("auroc"))
    out = {
        "accuracy_drop": check(
            acc_drop,
            th["max_accuracy_drop"],
            "<=",
            "accuracy drop: the edge model's accuracy is {v:.4f} below the full model's (allowed {l:.4f})",
        ),
        "auroc_drop": check(
            auc_drop,
            th["max_auroc_drop"],
            "<=",
            "AUROC drop: the edge model's AUROC is {v:.4f} below the full model's (allowed {l:.4f})",
        ),
        "agreement": check(
            agree, th["min_agreement"], ">=", "agreement: the two models agree on {v:.2%} of images (at least {l:.2%} required)"
        ),
        "latency_ms": check(
            p50, th["max_latency_ms"], "<=", "latency: the edge model's median latency is {v:.2f} ms (at most {l:.2f} ms allowed)"
        ),
        "size_mb": check(
            size_edge / 2**20 if size_edge is not None else None,
            th["max_size_mb"],
            "<=",
            "size: the edge model is {v:.2f} MiB (at most {l:.2f} MiB allowed)",
        ),
    }
    if models.edge is not None:
        bundle = models.bundle
        src = models.edge.spec.bundle_sha256
        same = src == bundle.sha256
        out["source"] = {
            "value": src,
            "limit": bundle.sha256,
            "op": "==",
            "passed": same,
            "messages": []
            if same
            else [
                f"source: the edge model was converted from bundle {str(src)[:12]}…, "
                f"not from the full bundle {bundle.sha256[:12]}…"
            ],
        }
        # threshold, labels, positive label, preprocessing: one sentence per difference
        out["contract"] = {
            "value": list(models.mismatches),
            "limit": "identical",
            "op": "==",
            "passed": not models.mismatches,
            "messages": list(models.mismatches),
        }
    return out


# ---- report files ------------------------------------------------------------------------
def write_validation_report(
    out_dir: str | Path, report: dict[str, Any], m_full, m_edge, diff, lat_full, lat_edge
) -> dict[str, str]:
    """report.json, report.md and the PNG plots into ``out_dir``; returns the plot file names."""
    from edge.core import plots
    from edge.core.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {"confusion": "confusion.png", "prob_diff": "prob_diff.png", "latency": "latency.png"}
    c = {
        "full": (m_full["confusion"]["labels"], m_full["confusion"]["matrix"]),
        "edge": (m_edge["confusion"]["labels"], m_edge["confusion"]["matrix"]),
    }
    plots.confusion(c, out / names["confusion"])
    plots.histogram({"|P_edge - P_full|": diff}, out / names["prob_diff"], "Probability differences", "absolute difference")
    series = {"full (Keras)": lat_full}
    if lat_edge is not None and len(lat_edge):
        series["edge"] = lat_edge
    plots.histogram(series, out / names["latency"], "Latency per image", "milliseconds")
    report["plots"] = names
    write_report(out, report, markdown(report))
    return names


def markdown(r: dict[str, Any]) -> str:
    """report.md: ready for a CI job summary or a pull-request comment."""
    from edge.core.report import fmt, table

    verdict = "PASSED" if r["passed"] else "FAILED"
    lines = [
        f"## Edge model validation: {verdict}",
        "",
        f"Full `{r['full']['model_id']}` vs edge `{Path(str(r['edge']['file'])).name}` ({r['edge']['precision']}) "
        f"on {r['data']['n']} images of `{r['data']['root']}`"
        + (f" ({len(r['data']['skipped'])} unreadable skipped)" if r["data"]["skipped"] else "")
        + ".",
    ]
    if r["failures"]:
        lines += ["", "Failed checks:", ""] + [f"- {f}" for f in r["failures"]]
    rows = []
    for name, c in r["checks"].items():
        status = {True: "pass", False: "FAIL", None: "not checked"}[c["passed"]]
        v = c["value"]
        rows.append(
            [
                name,
                v if isinstance(v, (int, float)) else (str(v)[:12] if v else "–"),
                f"{c['op']} {fmt(c['limit'], 4) if not isinstance(c['limit'], str) else c['limit'][:12]}",
                status,
            ]
        )
    lines += ["", table(["check", "value", "limit", "status"], rows, 4), ""]
    mrows = [
        [
            k,
            r["full"].get(k if k != "precision" else "precision_score"),
            r["edge"].get(k if k != "precision" else "precision_score"),
            r["drift"].get(k),
        ]
        for k in METRIC_KEYS
    ]
    lines += [table(["metric", "full", "edge", "drift (edge − full)"], mrows, 4), ""]
    pd = r["prob_diff"]
    lines += [
        f"Top-1 agreement {r['agreement']:.2%}; "
        f"|ΔP| mean {fmt(pd['mean'], 4)}, p99 {fmt(pd['p99'], 4)}, max {fmt(pd['max'], 4)}; "
        f"{len(r['disagreements'])} disagreement(s).",
        "",
        _paired_line(r["paired"]),
        "",
    ]
    lf, le = r["latency_ms"]["full"], r["latency_ms"]["edge"]
    lines += [
        table(
            ["latency (ms)", "p50", "p90", "p99", "per second"],
            [
                ["full (Keras, 1 image)", lf["p50"], lf["p90"], lf["p99"], lf["throughput_per_s"]],
                [
                    f"edge ({r['latency_ms']['source']}, {r['latency_ms']['threads']} threads)",
                    le["p50"],
                    le["p90"],
                    le["p99"],
                    le["throughput_per_s"],
                ],
            ],
            2,
        ),
        "",
    ]
    sb = r["size_bytes"]
    lines.append(f"Size: full {sb['full'] / 1e6:.2f} MB, edge " + (f"{sb['edge'] / 1e6:.2f} MB" if sb["edge"] else "–") + ".")
    subs = {k: v for k, v in r["drift"].get("subgroups", {}).items() if "drift" in v}
    if subs:
        lines += [
            "",
            table(
                ["subgroup", "n", "AUROC full", "AUROC edge", "accuracy drift"],
                [[k, v["n"], v["full"]["auroc"], v["edge"]["auroc"], v["drift"]["accuracy"]] for k, v in subs.items()],
                4,
            ),
        ]
    if r["disagreements"]:
        lines += [
            "",
            "<details><summary>Disagreements</summary>",
            "",
            table(
                ["image", "label", "full", "edge", "P full", "P edge"],
                [[d["path"], d["label"], d["full"], d["edge"], d["p_full"], d["p_edge"]] for d in r["disagreements"][:50]],
                4,
            ),
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _paired_line(pr: dict[str, Any]) -> str:
    """Edge minus full with paired intervals, and the calls only one of the two models gets right."""
    from edge.core.report import fmt, fmt_ci

    parts = []
    for k in ("auroc", "sensitivity", "specificity", "accuracy"):
        if k in pr:
            g, lo_hi = pr[k], fmt_ci(pr[k]["ci"], 4)
            calls = (
                f"; right only by edge {g['only_b']}, only by full {g['only_a']}, McNemar p {g['p_mcnemar']:.2g}"
                if "only_b" in g
                else ""
            )
            parts.append(f"{k} {fmt(g['difference'], 4)} ({lo_hi}{calls})")
    return f"Edge minus full on the same {pr['n']} images (paired bootstrap 95% interval): " + "; ".join(parts) + "."
