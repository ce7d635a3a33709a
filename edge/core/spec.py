"""The phone spec (``ModelSpec``): the one module that builds, embeds, reads and checks it.

``edge convert`` builds it from the bundle's contract and the converted model's real tensors,
and stores it as UTF-8 JSON in the .tflite's flatbuffer ``metadata`` table under the name
``fracture_edge_spec`` (tflite-support's writers do not install with this stack; the schema
shipped by ai-edge-litert is enough), so the .tflite alone says how to prepare its input and
read its output. The ``.json`` next to the file is a byte-identical copy for people and tools;
the runtime reads only the embedded spec (it is what a .tflite signature covers).

JSON fields (format ``fracture-edge/model-spec``, version 1; the Android core reads the same)::

    format, version, model_id, bundle_sha256, precision, task, labels, positive_label,
    threshold (required), preprocess {size, channels, pad_value, mean, std, resize, interpolation},
    input {shape, dtype, scale?, zero_point?}, output {shape, dtype, scale?, zero_point?, activation},
    source {arch, bundle, compression}, created, keep_float? (int8 tensors kept in float)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EdgeError
from .preprocess import PreprocessSpec

if TYPE_CHECKING:
    from .bundle import Bundle

SPEC_METADATA_NAME = "fracture_edge_spec"
SPEC_FORMAT = "fracture-edge/model-spec"
SPEC_VERSION = 1
QUANTISED = ("uint8", "int8")
REQUIRED = ("task", "labels", "preprocess", "input", "output", "threshold")


@dataclass(frozen=True)
class TensorSpec:
    shape: list[int]
    dtype: str
    scale: float | None = None  # uint8/int8 tensors only
    zero_point: int | None = None
    activation: str | None = None  # output only: sigmoid | softmax

    @classmethod
    def from_details(cls, details: dict[str, Any], activation: str | None = None) -> TensorSpec:
        """Read off an interpreter's tensor details (what the file really has)."""
        dtype = np.dtype(details["dtype"]).name
        scale = zp = None
        if dtype in QUANTISED:
            s, z = details["quantization"]
            scale, zp = float(s), int(z)
        return cls([int(d) for d in details["shape"]], dtype, scale, zp, activation)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.dtype in QUANTISED:
            d["scale"], d["zero_point"] = self.scale, self.zero_point
        if self.activation:
            d["activation"] = self.activation
        return d

    @classmethod
    def from_dict(cls, d: Any, name: str, where: Any) -> TensorSpec:
        try:
            t = cls([int(x) for x in d["shape"]], str(d["dtype"]), None, None, d.get("activation"))
            if t.dtype in QUANTISED:
                t = cls(t.shape, t.dtype, float(d["scale"]), int(d["zero_point"]), t.activation)
        except (KeyError, TypeError, ValueError):
            raise EdgeError(
                f"model spec '{name}' tensor is malformed (needs shape, dtype, and scale/zero_point when quantised)", where
            ) from None
        return t


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    bundle_sha256: str
    precision: str
    task: str
    labels: list[str]
    positive_label: str | None
    threshold: float
    preprocess: PreprocessSpec
    input: TensorSpec
    output: TensorSpec
    source: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    keep_float: list[str] | None = None
    version: int = SPEC_VERSION

    # --- building ----------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        bundle: Bundle,
        precision: str,
        input_details: dict[str, Any],
        output_details: dict[str, Any],
        keep_float: list[str] | None = None,
    ) -> ModelSpec:
        """The spec of a converted model: the bundle's contract plus the interpreter's real tensors."""
        c = bundle.card.contract
        return cls(
            bundle.model_id,
            bundle.sha256,
            precision,
            c.task,
            list(c.labels),
            c.positive_label,
            c.threshold,
            c.preprocess,
            TensorSpec.from_details(input_details),
            TensorSpec.from_details(output_details, c.output["activation"]),
            {"arch": c.arch, "bundle": bundle.path.name, "compression": bundle.card.to_dict()["compression"]},
            _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            keep_float or None,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": SPEC_FORMAT,
            "version": self.version,
            "model_id": self.model_id,
            "bundle_sha256": self.bundle_sha256,
            "precision": self.precision,
            "task": self.task,
            "labels": list(self.labels),
            "positive_label": self.positive_label,
            "threshold": self.threshold,
            "preprocess": self.preprocess.to_dict(),
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "source": self.source,
            "created": self.created,
        }
        if self.keep_float:
            d["keep_float"] = list(self.keep_float)
        return d

    def to_json(self) -> bytes:
        """The exact bytes embedded in the .tflite and written to the .json copy."""
        return json.dumps(self.to_dict(), indent=2).encode("utf-8")

    # --- reading and checking -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Any, where: Any) -> ModelSpec:
        """Parse and check a spec; EdgeError (one line, naming ``where``) for anything a consumer would trip on."""
        if not isinstance(d, dict) or d.get("format") != SPEC_FORMAT:
            fmt = d.get("format") if isinstance(d, dict) else None
            raise EdgeError(f"not a fracture-edge model spec (format={fmt!r})", where)
        if not isinstance(d.get("version"), int) or d["version"] > SPEC_VERSION:
            raise EdgeError(
                f"model spec version {d.get('version')!r} is not one this toolkit understands", where, "upgrade fracture-edge"
            )
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise EdgeError(f"model spec lacks {', '.join(missing)}", where)
        t = d["threshold"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0.0 <= t <= 1.0:
            raise EdgeError(f"model spec threshold must be a probability in 0..1, not {t!r}", where)
        labels = d["labels"]
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
            raise EdgeError("model spec labels must be a list of two or more names", where)
        if d["task"] == "binary" and d.get("positive_label") not in labels:
            raise EdgeError("binary model spec names no positive_label among its labels", where)
        try:
            pre = PreprocessSpec.from_dict(d["preprocess"])
        except (TypeError, ValueError, AttributeError) as e:
            raise EdgeError(f"model spec preprocess is invalid ({e})", where) from None
        return cls(
            str(d.get("model_id", "")),
            str(d.get("bundle_sha256", "")),
            str(d.get("precision", "unknown")),
            d["task"],
            labels,
            d.get("positive_label"),
            float(t),
            pre,
            TensorSpec.from_dict(d["input"], "input", where),
            TensorSpec.from_dict(d["output"], "output", where),
            d.get("source") or {},
            d.get("created"),
            d.get("keep_float"),
            d["version"],
        )

    @classmethod
    def read(cls, model_bytes: bytes, where: Any) -> ModelSpec | None:
        """The spec embedded in a .tflite, checked; None when the file carries none."""
        raw = _embedded_bytes(model_bytes, where)
        if raw is None:
            return None
        try:
            d = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EdgeError(f"the embedded model spec is not valid JSON ({e})", where) from None
        return cls.from_dict(d, where)

    def check_tensors(self, input_details: dict[str, Any], where: Any) -> None:
        """The spec must describe the tensors the file really has, or the phone would feed it garbage."""
        got = TensorSpec.from_details(input_details)
        want = self.input
        if want.dtype != got.dtype:
            raise EdgeError(f"model spec says input dtype {want.dtype} but the model takes {got.dtype}", where)
        if want.shape != got.shape:
            raise EdgeError(f"model spec says input shape {want.shape} but the model takes {got.shape}", where)
        if got.dtype in QUANTISED and (
            want.scale is None
            or got.scale is None  # a quantised tensor always has a scale: missing means a bad spec
            or not np.isclose(got.scale, want.scale, rtol=1e-5)
            or got.zero_point != want.zero_point
        ):
            raise EdgeError(
                f"model spec input quantisation ({want.scale}, {want.zero_point}) differs from the "
                f"model's ({got.scale}, {got.zero_point})",
                where,
            )

    def mismatches(self, other: Any, name: str = "the bundle") -> list[str]:
        """One sentence per decision field (task, labels, positive label, threshold, preprocessing)
        where this spec differs from ``other`` (a Bundle, a card contract, another spec)."""
        out = []
        if self.task != other.task:
            out.append(f"task: the edge model is {self.task}, {name} is {other.task}")
        if list(self.labels) != list(other.labels):
            out.append(f"labels: the edge model has {list(self.labels)}, {name} has {list(other.labels)}")
        if self.positive_label != other.positive_label:
            out.append(f"positive label: the edge model's is {self.positive_label!r}, {name}'s is {other.positive_label!r}")
        if self.threshold != other.threshold:
            out.append(f"threshold: the edge model decides at {self.threshold:.6g}, {name} at {other.threshold:.6g}")
        mine, theirs = self.preprocess, getattr(other, "preprocess", None) or other.spec
        if mine != theirs:
            diff = [k for k, v in mine.to_dict().items() if theirs.to_dict().get(k) != v]
            out.append(
                f"preprocessing: the edge model's {', '.join(diff)} differ from {name}'s "
                f"({', '.join(f'{k} {mine.to_dict()[k]} vs {theirs.to_dict()[k]}' for k in diff)})"
            )
        return out

    # --- embedding --------------------------------------------------------------------------
    def embed(self, model_bytes: bytes) -> bytes:
        """A copy of the .tflite with this spec as the ``fracture_edge_spec`` metadata entry (replacing one)."""
        import flatbuffers
        from ai_edge_litert import schema_py_generated as fb

        model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(model_bytes, 0))
        aligned = _aligned_buffer_type(fb)
        buf = aligned()
        buf.data = np.frombuffer(self.to_json(), dtype=np.uint8)
        model.buffers = [_as_aligned(b, aligned) for b in model.buffers or []] + [buf]
        entry = fb.MetadataT()
        entry.name = SPEC_METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        kept = [m for m in (model.metadata or []) if _name(m.name) != SPEC_METADATA_NAME]
        model.metadata = kept + [entry]
        builder = flatbuffers.Builder(len(model_bytes) + 4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


BUFFER_ALIGNMENT = 16  # the TFLite schema: `Buffer.data: [ubyte] (force_align: 16)`


def _aligned_buffer_type(fb: Any) -> type:
    """``fb.BufferT`` whose data vector starts on a 16-byte boundary, as the schema asks and as the
    converter writes it. The generated Python ``Pack`` aligns it to one byte only, so re-packing a
    model moved its weights to offsets 4, 8 or 12 mod 16; LiteRT reads constant tensors in place
    from the model buffer, so every kernel and delegate (on the phone too) saw them off the boundary
    the format promises."""

    class AlignedBufferT(fb.BufferT):
        def Pack(self, builder: Any) -> int:  # noqa: N802  (the generated API's name)
            data = None
            if self.data is not None:
                raw = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()  # a list when read without numpy
                builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
                builder.head -= len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                data = builder.EndVector()
            fb.BufferStart(builder)
            if data is not None:
                fb.BufferAddData(builder, data)
            fb.BufferAddOffset(builder, self.offset)
            fb.BufferAddSize(builder, self.size)
            return int(fb.BufferEnd(builder))

    return AlignedBufferT


def _as_aligned(buf: Any, aligned: type) -> Any:
    out = aligned()
    out.data, out.offset, out.size = buf.data, buf.offset, buf.size
    return out


def buffer_misalignments(model_bytes: bytes) -> list[tuple[int, int]]:
    """(buffer index, data offset mod 16) of every non-empty buffer whose data is not 16-byte aligned."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(model_bytes, 0)
    out = []
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b is not None and b.DataLength():
            start = b._tab.Vector(b._tab.Offset(4))  # field 'data' (vtable slot 4): first byte of the vector
            if start % BUFFER_ALIGNMENT:
                out.append((i, start % BUFFER_ALIGNMENT))
    return out


def _name(n: Any) -> str:
    return n.decode() if isinstance(n, bytes) else str(n or "")


def _embedded_bytes(model_bytes: bytes, where: Any) -> bytes | None:
    """The spec entry's bytes; None when there is none; EdgeError when the flatbuffer itself is broken."""
    from ai_edge_litert import schema_py_generated as fb  # flatbuffer reader only: no interpreter needed

    try:
        model = fb.Model.GetRootAs(model_bytes, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if (entry.Name() or b"").decode() == SPEC_METADATA_NAME:
                return bytes(model.Buffers(entry.Buffer()).DataAsNumpy())
    except (struct.error, ValueError, IndexError, UnicodeDecodeError, AttributeError, TypeError) as e:
        # offsets pointing past the end of the bytes: a file cut short or overwritten, not a missing spec
        raise EdgeError(
            f"the .tflite is truncated or corrupt (its flatbuffer cannot be read: {type(e).__name__})", where
        ) from None
    return None


def metadata_names(model_bytes: bytes) -> list[str]:
    """Names of all metadata entries (the converter adds its own, e.g. min_runtime_version)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(model_bytes, 0)
    return [(model.Metadata(i).Name() or b"").decode() for i in range(model.MetadataLength())]


def sidecar_path(tflite_path: str | Path) -> Path:
    """The readable copy of the embedded spec: ``model.tflite`` -> ``model.json``."""
    return Path(tflite_path).with_suffix(".json")
