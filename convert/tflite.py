"""Model bundle -> phone-ready .tflite (float32, fp16, dynamic range or full int8) with its spec inside.

One table of formats (like Ultralytics' export_formats) says what each precision means; one
function converts, checks the result in LiteRT against the Keras model, embeds the model spec
and writes the file atomically with a JSON copy of the spec and a conversion report.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core._tf import quiet_native
from edge.core.bundle import Bundle, load_bundle
from edge.core.data import list_images, load_canvases
from edge.core.errors import BundleError, DataError, EdgeError
from edge.core.fsutil import atomic_path
from edge.core.preprocess import normalize
from edge.core.report import write_report
from edge.core.runtime import EdgeModel
from edge.core.spec import ModelSpec, sidecar_path

from . import report as creport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Format:
    """One export format. The table below drives the `edge convert` flags (--format NAME and the
    --NAME alias), the converter settings (``configure``) and the formats `edge bench convert` times."""

    precision: str
    weights: str
    activations: str
    calibrated: bool  # needs representative images
    target: str  # where this format is the right choice

    @property
    def flag(self) -> str:
        return f"--{self.precision}"

    def configure(self, conv, tf, rep, io_type: str) -> None:
        """Set a TFLiteConverter up for this format."""
        if self.precision == "float32":
            return
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.weights == "float16":
            conv.target_spec.supported_types = [tf.float16]
        if self.calibrated:  # full integer; a QAT model carries its learned ranges but the converter still wants samples
            conv.representative_dataset = rep
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = {"uint8": tf.uint8, "int8": tf.int8}[io_type]
            conv.inference_output_type = conv.inference_input_type


FORMATS: dict[str, Format] = {
    f.precision: f
    for f in (
        Format("int8", "int8", "int8", True, "CPU/XNNPACK and NPUs: smallest and fastest"),
        Format("fp16", "float16", "float32 (float16 on the GPU delegate)", False, "phone GPU delegate"),
        Format("dynamic", "int8", "float32, int8 matmuls at run time", False, "CPU without calibration data"),
        Format("float32", "float32", "float32", False, "reference; any delegate"),
    )
}
IO_TYPES = ("uint8", "int8")
MIN_CALIBRATION = 50  # fewer images than this gives noisy activation ranges (warned, not refused)
AGREEMENT_IMAGES = 32  # images used for the Keras-vs-LiteRT check in every report
DEFAULT_KEEP_FLOAT_TOL = 0.05  # `--keep-float auto` acts when a probability moves more than this


@dataclass
class Conversion:
    path: Path
    spec: ModelSpec
    report: dict[str, Any]
    report_dir: Path | None = None
    model_bytes: bytes = field(default=b"", repr=False)


def default_output(bundle: Bundle, precision: str) -> Path:
    return Path.cwd() / f"{bundle.model_id}_{precision}.tflite"


def calibration_set(
    bundle: Bundle, calib: str | Path | None = None, max_images: int = 200, seed: int = 0
) -> tuple[np.ndarray, dict[str, Any]]:
    """Letterboxed uint8 canvases for int8 calibration: a folder of images, else the bundle's own samples."""
    spec = bundle.spec
    if calib is not None:
        paths = list_images([calib])
        canv, _, bad = load_canvases(paths, spec, skip_bad=True)
        if len(canv) == 0:
            raise DataError(f"calibration folder has no readable image ({len(bad)} unreadable)", calib)
        source = str(calib)
    else:
        stored = bundle.calibration_canvases()
        if stored is None or len(stored) == 0:
            raise BundleError(
                "bundle has no calibration samples", bundle.path, "pass --calib DIR with a few hundred training images"
            )
        canv = stored
        if tuple(canv.shape[1:3]) != tuple(spec.size):
            raise BundleError(
                f"calibration samples are {canv.shape[1]}x{canv.shape[2]}, the model takes {spec.size}", bundle.path
            )
        source = "bundle calibration.npz"
    if len(canv) > max_images:
        canv = canv[np.sort(np.random.default_rng(seed).permutation(len(canv))[:max_images])]
    info: dict[str, Any] = {"n": int(len(canv)), "source": source}
    if len(canv) < MIN_CALIBRATION:
        info["warning"] = f"only {len(canv)} calibration images; {MIN_CALIBRATION}+ give steadier activation ranges"
        log.warning("%s", info["warning"])
    return canv, info


def _representative(canvases: np.ndarray, spec) -> Callable[[], Iterator[list[np.ndarray]]]:
    def gen() -> Iterator[list[np.ndarray]]:
        for i, c in enumerate(canvases):
            if i == 0:
                # one pixel at 0 and one at 255 make the input range the full uint8 range, so the
                # int8 input scale is exactly (255 - 0) / std / 255: for x = u8/255 the uint8 input
                # tensor is the canvas itself, whatever the calibration images' brightest pixel
                c = c.copy()
                c[0, 0], c[-1, -1] = 0, 255
            yield [normalize(c, spec)[None]]  # the bundle's own preprocessing, batch of one

    return gen


def _converter(model, spec, precision: str, rep=None, io_type: str = "uint8", qat: bool = False):
    """A TFLiteConverter set up for one format, on a batch-1 concrete function of the Keras model."""
    from edge.core._tf import tf

    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *spec.input_shape], tf.float32, name="image")
    )
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    FORMATS[precision].configure(conv, tf, rep, io_type)
    return conv


def _run_converter(conv, bundle: Bundle, precision: str) -> bytes:
    try:
        with quiet_native():  # the converter's MLIR chatter on fd 2 ('fully_quantize: 0, ...'), shown with -v
            return conv.convert()
    except Exception as e:  # ConverterError and friends: say which op, not a 200-line MLIR dump
        msg = str(e)
        first = next(
            (ln.strip() for ln in msg.splitlines() if "error" in ln.lower()), msg.splitlines()[0] if msg else type(e).__name__
        )
        if precision == "int8":
            blocked = creport.ops_named_in(msg)
            raise EdgeError(
                f"cannot fully integer-quantise this model{' (ops: ' + ', '.join(blocked[:5]) + ')' if blocked else ''}: "
                f"{first[:300]}",
                bundle.path,
                "use --keep-float NODE or convert with --dynamic/--fp16",
            ) from None
        raise EdgeError(f"conversion to {precision} failed: {first[:300]}", bundle.path) from None


def _quantize_keeping_float(debugger, io_type: str, nodes: list[str]) -> bytes:
    """Re-quantise the debugger's calibrated model with ``nodes`` (output tensor names) left in float."""
    from tensorflow.lite.python import convert as _tfl_convert  # the selective quantiser behind QuantizationDebugger

    from edge.core._tf import tf

    dt = {"uint8": tf.uint8, "int8": tf.int8}[io_type]
    with quiet_native():
        return _tfl_convert.mlir_quantize(
            debugger.calibrated_model, fully_quantize=True, input_data_type=dt, output_data_type=dt, denylisted_nodes=nodes
        )


def agreement(model, edge: EdgeModel, canvases: np.ndarray, spec) -> dict[str, Any]:
    """Keras vs LiteRT on the same canvases: the largest and mean change of any output."""
    ref = np.asarray(model.predict(normalize(canvases, spec), batch_size=32, verbose=0), dtype=np.float64).reshape(
        len(canvases), -1
    )
    got = edge.predict_raw(canvases).astype(np.float64)
    d = np.abs(got - ref)
    return {"n": int(len(canvases)), "max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean())}


def _write_chunks(tmp: Path, data: bytes, chunk: int = 1 << 20) -> None:
    with open(tmp, "wb") as f:
        for i in range(0, len(data), chunk):
            f.write(data[i : i + chunk])
        f.flush()
        os.fsync(f.fileno())


def write_outputs(out: Path, model_bytes: bytes, spec: ModelSpec) -> None:
    """The .tflite and its JSON spec copy (the embedded bytes, identical), both or neither."""
    side = sidecar_path(out)
    with atomic_path(out, suffix=".tflite") as t_model, atomic_path(side, suffix=".json") as t_json:
        _write_chunks(t_model, model_bytes)
        _write_chunks(t_json, spec.to_json())


def _check_request(precision: str, io_type: str | None, keep_float) -> tuple[Format, str]:
    """The format and the io type: uint8 by default, int8 with --keep-float."""
    if precision not in FORMATS:
        raise EdgeError(f"unknown precision '{precision}'", hint=f"choose one of {', '.join(FORMATS)}")
    fmt = FORMATS[precision]
    if io_type is not None and io_type not in IO_TYPES:
        raise EdgeError(f"int8 models take uint8 or int8 input, not '{io_type}'")
    if keep_float and not fmt.calibrated:
        raise EdgeError("--keep-float applies to --int8 only")
    # TFLite's selective quantiser (mlir_quantize with denylisted nodes) writes int8 input and output whatever
    # type it is asked for: a uint8 request once came back int8 without a word. Ask for what it can do.
    if keep_float and io_type == "uint8":
        raise EdgeError(
            "--keep-float writes int8 input and output (TFLite's selective quantiser cannot write uint8)",
            hint="leave --io-type out or pass --io-type int8",
        )
    return fmt, io_type or ("int8" if keep_float else "uint8")


def _sample_canvases(b: Bundle, fmt: Format, calib, calib_max: int) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Calibration images for a calibrated format, else the bundle's samples (used for the agreement check)."""
    if fmt.calibrated:
        canv, info = calibration_set(b, calib, calib_max)
        if b.qat:
            info["note"] = "activation ranges learned in quantization-aware training"
        return canv, info
    kept = b.calibration_canvases()
    return (kept if kept is not None else np.zeros((0, *b.spec.size), np.uint8)), None


@dataclass
class _Converted:
    model_bytes: bytes
    edge: EdgeModel
    agreement: dict[str, Any] | None
    layers: list[dict[str, Any]] | None = None
    kept: list[str] = field(default_factory=list)


def _keep_float(
    b: Bundle, model, canv, keep_float, tol: float, io_type: str, got: _Converted, debugger, out: Path, threads: int
) -> _Converted:
    """Re-quantise with the worst (``auto``) or the named int8 layers left in float."""
    layers = got.layers or []
    if keep_float == "auto":
        if got.agreement is None or got.agreement["max_abs_diff"] <= tol:
            return got
        kept = creport.choose_float_layers(layers) or [r["tensor"] for r in layers[:3]]
    else:
        kept = list(keep_float)
        unknown = [k for k in kept if k not in {r["tensor"] for r in layers}]
        if unknown:
            raise EdgeError(
                f"--keep-float names unknown tensors: {', '.join(unknown[:3])}",
                hint="take names from the per-layer table of the conversion report",
            )
    if not kept:
        return got
    model_bytes = _quantize_keeping_float(debugger, io_type, kept)
    edge = EdgeModel(out, model_bytes, _provisional_spec(b, "int8", model_bytes), threads)
    check = canv[:AGREEMENT_IMAGES]
    agree = agreement(model, edge, check, b.spec) if len(check) else None
    if agree is not None and got.agreement is not None:
        agree["before_keep_float"] = got.agreement
    return _Converted(model_bytes, edge, agree, layers, kept)


def _convert(
    b: Bundle,
    model,
    fmt: Format,
    canv: np.ndarray,
    io_type: str,
    keep_float,
    keep_float_tol: float,
    debug: bool | None,
    out: Path,
    threads: int,
) -> _Converted:
    """Run the converter, the per-layer table (int8), the LiteRT-vs-Keras check and --keep-float."""
    spec = b.spec
    rep = _representative(canv, spec) if len(canv) else None
    model_bytes = _run_converter(_converter(model, spec, fmt.precision, rep, io_type, b.qat), b, fmt.precision)
    layers, debugger = None, None
    table = fmt.calibrated and not b.qat and (debug is None or debug or bool(keep_float))
    if table:  # the QAT ranges are learned, so the PTQ debugger's table would not describe them
        # --keep-float re-quantises the debugger's calibrated model: its activation ranges must come from every
        # calibration image, as the plain conversion's do (16 clamped the logit of the 3-channel default at
        # P >= 0.109, 54% agreement); the per-layer error table only needs 16
        calib = canv if keep_float else canv[:16]
        dbg_conv = _converter(model, spec, fmt.precision, _representative(calib, spec), io_type, b.qat)
        layers, debugger = creport.layer_errors(dbg_conv, _representative(canv[:16], spec))
    check = canv[:AGREEMENT_IMAGES]
    edge = EdgeModel(out, model_bytes, _provisional_spec(b, fmt.precision, model_bytes), threads)
    got = _Converted(model_bytes, edge, agreement(model, edge, check, spec) if len(check) else None, layers)
    if keep_float and not b.qat:
        got = _keep_float(b, model, canv, keep_float, keep_float_tol, io_type, got, debugger, out, threads)
    return got


def _report(
    b: Bundle,
    model,
    fmt: Format,
    io_type: str,
    out: Path,
    model_bytes: bytes,
    spec: ModelSpec,
    calib_info,
    got: _Converted,
    report: bool,
    seconds: float,
) -> dict[str, Any]:
    op_list = creport.ops(model_bytes)
    float_bytes = 4 * int(model.count_params())
    return {
        "model_id": b.model_id,
        "arch": b.arch,
        "bundle_sha256": b.sha256,
        "precision": fmt.precision,
        "format": {**vars(fmt), "flag": fmt.flag},
        "io_type": io_type if fmt.calibrated else "float32",
        "file": str(out),
        "size_bytes": len(model_bytes),
        "float32_weights_bytes": float_bytes,
        "size_vs_float32": len(model_bytes) / float_bytes if float_bytes else None,
        "spec": spec.to_dict(),
        "calibration": calib_info,
        "qat": b.qat,
        "ops": creport.op_counts(op_list),
        "precision_leftovers": creport.precision_leftovers(op_list, fmt.precision),
        "gpu": creport.gpu_compatibility(model_bytes) if report else {"compatible": None, "issues": ["not checked"]},
        "layers": got.layers,
        "keep_float": got.kept,
        "agreement": got.agreement,
        "seconds": seconds,
    }


def convert_bundle(
    bundle: Bundle | str | Path | None = None,
    precision: str = "int8",
    out: str | Path | None = None,
    calib: str | Path | None = None,
    io_type: str | None = None,
    keep_float: str | list[str] | None = None,
    keep_float_tol: float = DEFAULT_KEEP_FLOAT_TOL,
    debug: bool | None = None,
    calib_max: int = 200,
    report: bool = True,
    threads: int = 2,
) -> Conversion:
    """Convert a bundle (None: the embedded default) to one TFLite format and write it atomically.

    ``keep_float``: "auto" keeps the worst layers in float when a probability moves more than
    ``keep_float_tol`` on the calibration images; a list names output tensors to keep in float.
    ``io_type`` (int8): the input and output tensors' type, uint8 by default and int8 with ``keep_float``.
    ``debug`` (default on for int8): the QuantizationDebugger per-layer error table."""
    t0 = time.perf_counter()
    fmt, io_type = _check_request(precision, io_type, keep_float)
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    out = Path(out) if out is not None else default_output(b, precision)
    if out.suffix != ".tflite":
        raise EdgeError("output file must end in .tflite", out)
    model = b.load_model()
    canv, calib_info = _sample_canvases(b, fmt, calib, calib_max)
    got = _convert(b, model, fmt, canv, io_type, keep_float, keep_float_tol, debug, out, threads)
    final_spec = ModelSpec.build(b, precision, got.edge.input_details[0], got.edge.output_details[0], got.kept)
    model_bytes = final_spec.embed(got.model_bytes)
    write_outputs(out, model_bytes, final_spec)
    rep = _report(b, model, fmt, io_type, out, model_bytes, final_spec, calib_info, got, report, time.perf_counter() - t0)
    report_dir = None
    if report:
        report_dir = out.with_name(out.stem + "_report")
        write_report(report_dir, rep, creport.markdown(rep))
    log.info("%s -> %s: %.2f MB in %.1f s", b.model_id, out, len(model_bytes) / 1e6, rep["seconds"])
    return Conversion(out, final_spec, rep, report_dir, model_bytes)


def _provisional_spec(b: Bundle, precision: str, model_bytes: bytes) -> ModelSpec:
    """A spec read off the freshly converted tensors, to run the model before the final one is embedded."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes)
    return ModelSpec.build(b, precision, it.get_input_details()[0], it.get_output_details()[0])


def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_CACHE_DIR", Path.home() / ".cache" / "fracture-edge"))


def cached_int8(bundle: Bundle | str | Path | None = None) -> Path:
    """The bundle's int8 model, converted once and kept under the cache keyed by the bundle hash."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    path = cache_dir() / "tflite" / f"{b.sha256[:24]}_int8.tflite"
    if not path.is_file():
        log.warning("converting %s to int8 (cached at %s)", b.model_id, path)
        convert_bundle(b, "int8", out=path, debug=False, report=False)
    return path
