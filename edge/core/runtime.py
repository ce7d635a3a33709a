"""The on-device side, run here: a .tflite model in the LiteRT interpreter.

An ``EdgeModel`` reads the model spec that ``edge convert`` embeds in the .tflite (a flatbuffer
metadata entry named ``fracture_edge_spec``; the JSON copy next to the file is the fallback), so
the file alone says how to prepare its input and read its output, exactly as the phone does:
letterboxed uint8 canvas -> ``edge.preprocess.normalize`` -> the input quantisation of the spec
-> invoke -> dequantise -> probabilities in the spec's label order.

This module imports neither TensorFlow nor ``train``/``convert``: LiteRT alone runs the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import to_probabilities
from .errors import EdgeError
from .fsutil import sha256_file
from .preprocess import PreprocessSpec, dequantize, normalize, quantize

SPEC_METADATA_NAME = "fracture_edge_spec"
SPEC_FORMAT = "fracture-edge/model-spec"
SPEC_VERSION = 1
_DTYPES = {"uint8": np.uint8, "int8": np.int8, "float32": np.float32, "float16": np.float16}


def sidecar_path(tflite_path: str | Path) -> Path:
    """The readable JSON copy of the spec: ``model.tflite`` -> ``model.json``."""
    return Path(tflite_path).with_suffix(".json")


def read_embedded_spec(model_bytes: bytes) -> dict[str, Any] | None:
    """The spec stored in the .tflite's metadata, or None when the file carries none."""
    from ai_edge_litert import schema_py_generated as fb  # flatbuffer reader only: no interpreter needed

    try:
        model = fb.Model.GetRootAs(model_bytes, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if (entry.Name() or b"").decode() == SPEC_METADATA_NAME:
                data = model.Buffers(entry.Buffer()).DataAsNumpy()
                return json.loads(bytes(data).decode("utf-8"))
    except (ValueError, IndexError, UnicodeDecodeError, AttributeError, TypeError):
        return None
    return None


def check_spec(spec: dict[str, Any], where: str | Path) -> dict[str, Any]:
    """The fields every consumer relies on are present and of a version we understand."""
    if spec.get("format") != SPEC_FORMAT:
        raise EdgeError(f"not a fracture-edge model spec (format={spec.get('format')!r})", where)
    if int(spec.get("version", 0)) > SPEC_VERSION:
        raise EdgeError(f"model spec version {spec['version']} is newer than this toolkit understands", where,
                        "upgrade fracture-edge")
    missing = [k for k in ("task", "labels", "preprocess", "input", "output", "threshold") if k not in spec]
    if missing:
        raise EdgeError(f"model spec lacks {', '.join(missing)}", where)
    if spec["task"] == "binary" and spec.get("positive_label") not in spec["labels"]:
        raise EdgeError("binary model spec names no positive_label among its labels", where)
    return spec


class EdgeModel:
    """A converted model ready to run: ``EdgeModel.load(path, threads=2)``."""

    def __init__(self, path: Path, model_bytes: bytes, spec: dict[str, Any], threads: int = 2, xnnpack: bool = True):
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
            self.interpreter = Interpreter(model_content=model_bytes, num_threads=threads,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise EdgeError(f"LiteRT cannot load this model ({str(e).splitlines()[0]})", path) from None
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()
        self._in = self.input_details[0]
        self._out = self.output_details[0]
        self._check_against_interpreter()

    @classmethod
    def load(cls, path: str | Path, threads: int = 2, xnnpack: bool = True) -> EdgeModel:
        path = Path(path)
        if not path.is_file():
            raise EdgeError("no such .tflite file", path)
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise EdgeError("not a TFLite model (no TFL3 identifier)", path)
        spec = read_embedded_spec(data)
        if spec is None:
            side = sidecar_path(path)
            if not side.is_file():
                raise EdgeError("the .tflite carries no fracture-edge spec and has no JSON copy next to it", path,
                                "convert it with `edge convert`")
            try:
                spec = json.loads(side.read_text())
            except json.JSONDecodeError as e:
                raise EdgeError(f"model spec is not valid JSON ({e.msg}, line {e.lineno})", side) from None
        return cls(path, data, check_spec(spec, path), threads, xnnpack)

    # --- what the spec says ---------------------------------------------------------------
    @property
    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.spec["preprocess"])

    @property
    def labels(self) -> list[str]:
        return list(self.spec["labels"])

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def positive_label(self) -> str | None:
        return self.spec.get("positive_label")

    @property
    def threshold(self) -> float:
        return float(self.spec["threshold"])

    @property
    def precision(self) -> str:
        return self.spec.get("precision", "unknown")

    def _check_against_interpreter(self) -> None:
        """The spec must describe the tensors the file really has, or the phone would feed it garbage."""
        want = self.spec["input"]
        got_dtype = np.dtype(self._in["dtype"]).name
        if want.get("dtype") != got_dtype:
            raise EdgeError(f"model spec says input dtype {want.get('dtype')} but the model takes {got_dtype}", self.path)
        if list(want.get("shape", [])) != [int(d) for d in self._in["shape"]]:
            raise EdgeError(f"model spec says input shape {want.get('shape')} but the model takes {list(self._in['shape'])}",
                            self.path)
        if got_dtype in ("uint8", "int8"):
            scale, zp = self._in["quantization"]
            if not np.isclose(scale, float(want["scale"]), rtol=1e-5) or int(zp) != int(want["zero_point"]):
                raise EdgeError(f"model spec input quantisation ({want['scale']}, {want['zero_point']}) differs from the "
                                f"model's ({scale}, {zp})", self.path)

    # --- running it -------------------------------------------------------------------------
    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float model input (H x W x C or 1 x H x W x C) -> the model's input tensor (batch of one)."""
        want = self.spec["input"]
        x = np.asarray(x, dtype=np.float32).reshape(self._in["shape"])
        dt = _DTYPES[want["dtype"]]
        if want["dtype"] in ("uint8", "int8"):
            return quantize(x, float(want["scale"]), int(want["zero_point"]), dt)
        return x.astype(dt)

    def invoke_raw(self, x_in: np.ndarray) -> np.ndarray:
        """One prepared input tensor -> the raw output tensor (copied), no conversion."""
        self.interpreter.set_tensor(self._in["index"], x_in)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"]).copy()

    def dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        out = self.spec["output"]
        if out.get("dtype") in ("uint8", "int8"):
            return dequantize(raw, float(out["scale"]), int(out["zero_point"]))
        return np.asarray(raw, dtype=np.float32)

    def predict_raw(self, canvases: np.ndarray) -> np.ndarray:
        """N x H x W uint8 canvases -> N x outputs, dequantised (sigmoid/softmax already applied)."""
        canvases = np.asarray(canvases)
        if canvases.ndim == 2:
            canvases = canvases[None]
        spec = self.preprocess_spec
        if tuple(canvases.shape[1:3]) != tuple(spec.size):
            raise EdgeError(f"canvases are {canvases.shape[1]}x{canvases.shape[2]} but the model takes "
                            f"{spec.size[0]}x{spec.size[1]}", self.path)
        rows = [self.dequantize_output(self.invoke_raw(self.quantize_input(normalize(c, spec)))).reshape(-1)
                for c in canvases]
        return np.stack(rows) if rows else np.zeros((0, 1), np.float32)

    def predict_canvases(self, canvases: np.ndarray) -> np.ndarray:
        """N x H x W uint8 letterboxed canvases -> N x K probabilities in ``labels`` order."""
        return to_probabilities(self.predict_raw(canvases), self.task, self.labels, self.positive_label)

    def summary(self) -> str:
        s = self.preprocess_spec
        return (f"{self.path.name} ({self.precision}, {self.task}, {len(self.labels)} classes, "
                f"{s.size[0]}x{s.size[1]}x{s.channels}, {self.size_bytes / 1e6:.2f} MB)")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    return sha256_file(path)
