"""What a conversion produced: ops, precision left behind, GPU-delegate fit, per-layer int8 error.

Everything here reads the converted flatbuffer itself (not the converter's logs), so the report
says what is really in the file the phone will load.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from edge.core._tf import quiet_native
from edge.core.report import fmt, table

# ops that only move between the model's quantised interior and its interface
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}
# rmse/scale of a well-quantised tensor is ~0.289 (uniform rounding noise, 1/sqrt(12))
WELL_QUANTIZED = 0.289
DEFAULT_KEEP_FLOAT_LIMIT = 1.0  # above this a layer loses several quantisation steps of signal


def _op_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as fb

    return {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _type_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as fb

    return {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_") and isinstance(v, int)}


def ops(model_bytes: bytes) -> list[dict[str, Any]]:
    """Every operator in execution order with the types of its inputs and outputs."""
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(model_bytes, 0)
    names = _op_names()
    codes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        codes.append(names.get(code, f"OP_{code}") if code != 32 else (oc.CustomCode() or b"CUSTOM").decode())
    types = _type_names()

    def tinfo(g: Any, idx: int) -> dict[str, Any]:  # g: the subgraph the tensor index refers to
        t = g.Tensors(idx)
        buf = m.Buffers(t.Buffer()) if t.Buffer() < m.BuffersLength() else None
        const = bool(buf is not None and buf.DataLength() > 0)
        return {
            "type": types.get(t.Type(), str(t.Type())),
            "const": const,
            "elements": int(np.prod(t.ShapeAsNumpy())) if t.ShapeLength() else 1,
            "name": (t.Name() or b"").decode(),
        }

    out = []
    for s in range(m.SubgraphsLength()):
        g = m.Subgraphs(s)
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            ins = [tinfo(g, int(i)) for i in op.InputsAsNumpy() if i >= 0] if op.InputsLength() else []
            outs = [tinfo(g, int(i)) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
            out.append({"op": codes[op.OpcodeIndex()], "inputs": ins, "outputs": outs, "subgraph": s})
    return out


def op_counts(op_list: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(o["op"] for o in op_list).most_common())


def precision_leftovers(op_list: list[dict[str, Any]], precision: str) -> list[dict[str, Any]]:
    """Ops left in another precision than asked for.

    int8: any op computing on float activations (quantise/dequantise at the interface excepted);
    dynamic and fp16: ops whose large weights stayed float32 (not quantised / not halved)."""
    found = []
    for i, o in enumerate(op_list):
        if precision == "int8":
            if o["op"] in _BOUNDARY_OPS:
                continue
            floats = [t for t in o["inputs"] + o["outputs"] if t["type"] in ("float32", "float16")]
            if floats:
                found.append({"index": i, "op": o["op"], "tensor": floats[0]["name"], "type": floats[0]["type"]})
        elif precision in ("dynamic", "fp16"):
            big = [t for t in o["inputs"] if t["const"] and t["type"] == "float32" and t["elements"] > 1024]
            if big:
                found.append({"index": i, "op": o["op"], "tensor": big[0]["name"], "type": "float32 weights"})
    return found


def gpu_compatibility(model_bytes: bytes) -> dict[str, Any]:
    """tf.lite.experimental.Analyzer's GPU-delegate check, reduced to a verdict and its warnings."""
    from edge.core._tf import tf

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            tf.lite.experimental.Analyzer.analyze(model_content=model_bytes, gpu_compatibility=True)
    except Exception as e:  # the analyzer is experimental: a failure must not sink the conversion
        return {"compatible": None, "issues": [f"analyzer failed: {type(e).__name__}: {e}"]}
    text = buf.getvalue()
    issues = sorted(
        {ln.strip() for ln in text.splitlines() if "GPU COMPATIBILITY WARNING" in ln or "not supported" in ln.lower()}
    )
    compatible = "looks compatible with GPU delegate" in text and not issues
    return {"compatible": compatible, "issues": issues[:50]}


def layer_errors(converter, dataset: Callable[[], Iterable[list[np.ndarray]]]) -> tuple[list[dict[str, Any]], Any]:
    """Per-layer int8 error with tf.lite.experimental.QuantizationDebugger.

    Returns rows sorted worst first (``rmse_over_scale``: ~0.289 is ideal rounding noise) and the
    debugger, whose calibrated model can be re-quantised with layers kept in float."""
    from edge.core._tf import tf

    with quiet_native(), contextlib.redirect_stdout(io.StringIO()):  # its calibration re-runs the converter
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for r in csv.DictReader(io.StringIO(dump.getvalue())):
        scale, mse = _f(r.get("scale")), _f(r.get("mean_squared_error"))
        rmse = float(np.sqrt(mse)) if np.isfinite(mse) else np.nan
        rows.append(
            {
                "tensor": r.get("tensor_name", ""),
                "op": r.get("op_name", ""),
                "scale": scale,
                "mean_error": _f(r.get("mean_error")),
                "max_abs_error": _f(r.get("max_abs_error")),
                "rmse": rmse,
                "rmse_over_scale": rmse / scale if scale else np.nan,
            }
        )
    rows.sort(key=lambda r: -np.nan_to_num(r["rmse_over_scale"], nan=-1))
    return rows, debugger


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def choose_float_layers(rows: list[dict[str, Any]], limit: float = DEFAULT_KEEP_FLOAT_LIMIT, max_layers: int = 5) -> list[str]:
    """``--keep-float auto``: the worst layers whose error is well above rounding noise."""
    return [r["tensor"] for r in rows if np.isfinite(r["rmse_over_scale"]) and r["rmse_over_scale"] > limit][:max_layers]


def markdown(rep: dict[str, Any]) -> str:
    """A human report of one conversion (the same facts as the JSON)."""
    lines = [
        f"# Conversion: {rep['model_id']} -> {rep['precision']}",
        "",
        f"- file: `{rep['file']}` ({rep['size_bytes'] / 1e6:.3f} MB, {fmt(rep.get('size_vs_float32'))}x the float32 file)",
        f"- source bundle: `{rep['bundle_sha256'][:16]}…` ({rep['arch']})",
        f"- input: {rep['spec']['input']}",
        f"- output: {rep['spec']['output']}",
    ]
    if rep.get("calibration"):
        c = rep["calibration"]
        lines.append(
            f"- calibration: {c['n']} images from {c['source']}" + (f" (warning: {c['warning']})" if c.get("warning") else "")
        )
    if rep.get("keep_float"):
        lines.append(f"- layers kept in float: {', '.join(rep['keep_float'])}")
    lines += ["", "## Ops", "", table(["op", "count"], list(rep["ops"].items()))]
    lo = rep["precision_leftovers"]
    lines += ["", f"## Ops left in another precision than {rep['precision']}: {len(lo)}", ""]
    if lo:
        lines.append(table(["#", "op", "tensor", "type"], [[x["index"], x["op"], x["tensor"], x["type"]] for x in lo[:30]]))
    g = rep["gpu"]
    verdict = {True: "compatible", False: "NOT fully compatible", None: "unknown"}[g["compatible"]]
    lines += ["", f"## GPU delegate: {verdict}", ""] + [f"- {x}" for x in g["issues"][:20]]
    if rep.get("layers"):
        lines += [
            "",
            "## Per-layer int8 error (QuantizationDebugger; rmse/scale ≈ 0.289 is ideal)",
            "",
            table(
                ["op", "tensor", "rmse/scale", "max abs error", "scale"],
                [[r["op"], r["tensor"][:60], r["rmse_over_scale"], r["max_abs_error"], r["scale"]] for r in rep["layers"][:15]],
                4,
            ),
        ]
    if rep.get("agreement"):
        a = rep["agreement"]
        lines += [
            "",
            "## Agreement with the Keras model on the calibration images",
            "",
            f"max |Δp| {fmt(a['max_abs_diff'], 4)}, mean |Δp| {fmt(a['mean_abs_diff'], 4)} over {a['n']} images",
        ]
    return "\n".join(lines) + "\n"


_OP_IN_ERROR = re.compile(r"'tfl\.([a-z_0-9]+)'|op[s]? ?'?([A-Z_0-9]{3,})'?")


def ops_named_in(message: str) -> list[str]:
    """Op names a converter error mentions (to say which op blocks full-integer quantisation)."""
    found = []
    for a, b in _OP_IN_ERROR.findall(message):
        name = (a or b).upper()
        if name and name not in found:
            found.append(name)
    return found
