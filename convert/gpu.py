"""Can the TFLite GPU delegate run every op of a .tflite?

Two checks, both static (the delegate may still reject a tensor at run time on a phone):

* the operators in the flatbuffer against the builtin ops the GPU delegate has a kernel for
  (the cases of TensorFlow's ``tensorflow/lite/tools/versioning/gpu_compatibility.cc``, which the
  delegate itself consults); per-op parameter limits (strides, broadcast shapes) are not checked;
* ``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)``, which prints a
  "GPU COMPATIBILITY WARNING" line per op it rejects. In the TF 2.21 and ai-edge-litert 2.3
  wheels its checker is not compiled in: it called ROUND, REVERSE_V2, TOPK_V2 and
  LOCAL_RESPONSE_NORMALIZATION models compatible, and the binaries hold none of its messages.
  Its complaints are still reported, but its "compatible" verdict alone proves nothing.
"""

from __future__ import annotations

import contextlib
import io

# Builtin ops with a GPU delegate kernel (gpu_compatibility.cc, TensorFlow 2.21): names, a fact list.
GPU_OPS = frozenset(
    [
        "ABS",
        "ADD",
        "ADD_N",
        "ATAN2",
        "AVERAGE_POOL_2D",
        "BATCH_MATMUL",
        "CAST",
        "CEIL",
        "CONCATENATION",
        "CONV_2D",
        "COS",
        "CUMSUM",
        "DENSIFY",
        "DEPTHWISE_CONV_2D",
        "DEPTH_TO_SPACE",
        "DEQUANTIZE",
        "DIV",
        "DYNAMIC_UPDATE_SLICE",
        "ELU",
        "EMBEDDING_LOOKUP",
        "EQUAL",
        "EXP",
        "FLOOR",
        "FLOOR_DIV",
        "FLOOR_MOD",
        "FULLY_CONNECTED",
        "GATHER",
        "GELU",
        "GREATER",
        "GREATER_EQUAL",
        "HARD_SWISH",
        "LEAKY_RELU",
        "LESS",
        "LESS_EQUAL",
        "LOG",
        "LOGICAL_AND",
        "LOGISTIC",
        "LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MIRROR_PAD",
        "MUL",
        "NEG",
        "NOT_EQUAL",
        "ONE_HOT",
        "PACK",
        "PAD",
        "PADV2",
        "POW",
        "PRELU",
        "QUANTIZE",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "REDUCE_PROD",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SELECT",
        "SELECT_V2",
        "SIGN",
        "SIN",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SPLIT_V",
        "SQRT",
        "SQUARE",
        "SQUARED_DIFFERENCE",
        "STABLEHLO_CLAMP",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "TANH",
        "TILE",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
    ]
)


def model_ops(model_content: bytes) -> list[str]:
    """Names of the builtin (or custom) operators a .tflite uses, one per operator code."""
    from ai_edge_litert import schema_py_generated as fb  # flatbuffer reader only

    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    model = fb.Model.GetRootAs(model_content, 0)
    out = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        op = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # codes above 127 live in the new field
        name = names.get(op, f"#{op}")
        out.append(f"CUSTOM:{code.CustomCode().decode()}" if name == "CUSTOM" else name)
    return out


def analyzer_report(model_content: bytes) -> str:
    from edge.core._tf import tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):  # the analyzer prints its report and returns nothing
        tf.lite.experimental.Analyzer.analyze(model_content=model_content, gpu_compatibility=True)
    return buf.getvalue()


def gpu_problems(model_content: bytes) -> list[str]:
    """What keeps the model off the GPU delegate ([] when nothing does)."""
    problems = [f"no GPU kernel for {op}" for op in sorted(set(model_ops(model_content))) if op not in GPU_OPS]
    text = analyzer_report(model_content)
    problems += [line.strip() for line in text.splitlines() if "GPU COMPATIBILITY WARNING" in line]
    if "looks compatible with GPU delegate" not in text and not problems:
        problems.append("the analyzer gave no GPU verdict")  # a changed report must not pass as compatible
    return problems
