"""The on-device side, run here: a .tflite model in the LiteRT interpreter.

An ``EdgeModel`` reads the model spec that ``edge convert`` embeds in the .tflite (edge.core.spec:
a flatbuffer metadata entry named ``fracture_edge_spec``), so the file alone says how to prepare
its input and read its output, exactly as the phone does:
letterboxed uint8 canvas -> ``edge.preprocess.normalize`` -> the input quantisation of the spec
-> invoke -> dequantise -> probabilities in the spec's label order.

This module imports neither TensorFlow nor ``train``/``convert``: LiteRT alone runs the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._tf import quiet_native
from .bundle import to_probabilities
from .errors import EdgeError
from .fsutil import sha256_file
from .preprocess import PreprocessSpec, dequantize, normalize, quantize
from .spec import ModelSpec

_DTYPES = {k: np.dtype(k) for k in ("uint8", "int8", "float32", "float16")}


class EdgeModel:
    """A converted model ready to run: ``EdgeModel.load(path, threads=2)``."""

    def __init__(self, path: Path, model_bytes: bytes, spec: ModelSpec, threads: int = 2, xnnpack: bool = True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.path = path
        self.spec = spec
        self.threads = threads
        self.size_bytes = len(model_bytes)
        self.sha256 = _sha256(model_bytes)
        try:
            # XNNPACK is LiteRT's default CPU delegate; the thread count reaches it through num_threads.
            # xnnpack=False runs TFLite's builtin kernels (ruy), for benchmarks that compare the two.
            resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            self.interpreter = Interpreter(model_content=model_bytes, num_threads=threads, experimental_op_resolver_type=resolver)
            with quiet_native():  # "INFO: Created TensorFlow Lite XNNPACK delegate" on fd 2, shown with -v
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise EdgeError(f"LiteRT cannot load this model ({str(e).splitlines()[0]})", path) from None
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()
        self._in = self.input_details[0]
        self._out = self.output_details[0]
        self._check_against_interpreter()
        self._batch = int(self._in["shape"][0])
        self.batchable: bool | None = None  # unknown until a batch larger than one is tried

    @classmethod
    def load(cls, path: str | Path, threads: int = 2, xnnpack: bool = True) -> EdgeModel:
        path = Path(path)
        if not path.is_file():
            raise EdgeError("no such .tflite file", path)
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise EdgeError("not a TFLite model (no TFL3 identifier)", path)
        spec = ModelSpec.read(data, path)
        if spec is None:
            raise EdgeError("the .tflite carries no fracture-edge spec in its metadata", path, "convert it with `edge convert`")
        return cls(path, data, spec, threads, xnnpack)

    # --- what the spec says ---------------------------------------------------------------
    @property
    def preprocess_spec(self) -> PreprocessSpec:
        return self.spec.preprocess

    @property
    def labels(self) -> list[str]:
        return list(self.spec.labels)

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def positive_label(self) -> str | None:
        return self.spec.positive_label

    @property
    def threshold(self) -> float:
        return self.spec.threshold

    @property
    def precision(self) -> str:
        return self.spec.precision

    def _check_against_interpreter(self) -> None:
        self.spec.check_tensors(self._in, self.path)

    # --- running it -------------------------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float model input (H x W x C, or N x H x W x C at the current batch) -> the model's input tensor."""
        want = self.spec.input
        x = np.asarray(x, dtype=np.float32).reshape(self._in["shape"])
        dt = _DTYPES[want.dtype]
        if want.scale is not None:
            return quantize(x, want.scale, want.zero_point or 0, dt)  # TFLite: no zero point = 0
        return x.astype(dt)

    def invoke_raw(self, x_in: np.ndarray) -> np.ndarray:
        """One prepared input tensor -> the raw output tensor (copied), no conversion."""
        self.interpreter.set_tensor(self._in["index"], x_in)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"]).copy()

    def dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        out = self.spec.output
        if out.scale is not None:
            return dequantize(raw, out.scale, out.zero_point or 0)
        return np.asarray(raw, dtype=np.float32)

    def _set_batch(self, n: int) -> bool:
        """Resize the input tensor to a batch of n; False (and stay at one) when the graph refuses,
        e.g. a Reshape that hard-codes batch 1. Converted models declare batch 1, but their ops
        mostly take any batch, and several canvases per invoke amortise the per-call cost."""
        if n == self._batch:
            return True
        if n > 1 and self.batchable is False:
            return False
        shape = [n, *[int(d) for d in self._in["shape"][1:]]]
        try:
            self.interpreter.resize_tensor_input(self._in["index"], shape, strict=False)
            with quiet_native():
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            self.batchable = False
            if n == 1:
                raise
            self._set_batch(1)
            return False
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self._batch = n
        if n > 1:
            self.batchable = True
        return True

    def predict_raw(self, canvases: np.ndarray, batch: int = 1) -> np.ndarray:
        """N x H x W uint8 canvases -> N x outputs, dequantised (sigmoid/softmax already applied).
        ``batch`` > 1 runs that many canvases per invoke when the graph allows it (same results:
        each row is computed independently)."""
        canvases = np.asarray(canvases)
        if canvases.ndim == 2:
            canvases = canvases[None]
        spec = self.preprocess_spec
        if tuple(canvases.shape[1:3]) != tuple(spec.size):
            raise EdgeError(
                f"canvases are {canvases.shape[1]}x{canvases.shape[2]} but the model takes {spec.size[0]}x{spec.size[1]}",
                self.path,
            )
        rows = []
        i = 0
        while i < len(canvases):
            n = min(max(1, int(batch)), len(canvases) - i)
            if not self._set_batch(n):
                n = 1
                self._set_batch(1)
            chunk = canvases[i : i + n]
            rows.append(self.dequantize_output(self.invoke_raw(self.quantize_input(normalize(chunk, spec)))).reshape(n, -1))
            i += n
        return np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)

    def predict_canvases(self, canvases: np.ndarray, batch: int = 1) -> np.ndarray:
        """N x H x W uint8 letterboxed canvases -> N x K probabilities in ``labels`` order."""
        return to_probabilities(self.predict_raw(canvases, batch), self.task, self.labels, self.positive_label)

    def summary(self) -> str:
        s = self.preprocess_spec
        return (
            f"{self.path.name} ({self.precision}, {self.task}, {len(self.labels)} classes, "
            f"{s.size[0]}x{s.size[1]}x{s.channels}, {self.size_bytes / 1e6:.2f} MB)"
        )


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    return sha256_file(path)
