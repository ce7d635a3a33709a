"""The model spec a phone needs, built from a bundle and embedded inside the .tflite.

The spec (format ``fracture-edge/model-spec``, documented in edge.core.runtime and read by the
Android core) goes into the flatbuffer's ``metadata`` table under the name
``fracture_edge_spec`` as UTF-8 JSON, so the .tflite alone is enough on the phone.
tflite-support's metadata writers do not install with this stack; the TFLite flatbuffer
schema shipped by ai-edge-litert is all that is needed.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import numpy as np

from edge.core.bundle import Bundle
from edge.core.runtime import SPEC_FORMAT, SPEC_METADATA_NAME, SPEC_VERSION, read_embedded_spec


def _tensor(details: dict[str, Any], activation: str | None = None) -> dict[str, Any]:
    dtype = np.dtype(details["dtype"]).name
    out: dict[str, Any] = {"shape": [int(d) for d in details["shape"]], "dtype": dtype}
    if dtype in ("uint8", "int8"):
        scale, zp = details["quantization"]
        out["scale"], out["zero_point"] = float(scale), int(zp)
    if activation:
        out["activation"] = activation
    return out


def build_spec(bundle: Bundle, precision: str, input_details: dict[str, Any], output_details: dict[str, Any],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model-spec dict for a converted model, read off the interpreter's real tensors."""
    spec: dict[str, Any] = {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "model_id": bundle.model_id,
        "bundle_sha256": bundle.sha256,
        "precision": precision,
        "task": bundle.task,
        "labels": bundle.labels,
        "positive_label": bundle.positive_label if bundle.task == "binary" else None,
        "threshold": bundle.threshold,
        "preprocess": bundle.spec.to_dict(),
        "input": _tensor(input_details),
        "output": _tensor(output_details, "sigmoid" if bundle.task == "binary" else "softmax"),
        "source": {"arch": bundle.arch, "bundle": bundle.path.name,
                   "compression": bundle.card.to_dict()["compression"]},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    spec.update(extra or {})
    return spec


def embed_spec(model_bytes: bytes, spec: dict[str, Any]) -> bytes:
    """A copy of the .tflite with ``spec`` stored as the ``fracture_edge_spec`` metadata entry
    (an existing entry of that name is replaced)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(model_bytes, 0))
    buf = fb.BufferT()
    buf.data = np.frombuffer(json.dumps(spec, sort_keys=False).encode("utf-8"), dtype=np.uint8)
    model.buffers = list(model.buffers or []) + [buf]
    entry = fb.MetadataT()
    entry.name = SPEC_METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    kept = [m for m in (model.metadata or []) if _name(m.name) != SPEC_METADATA_NAME]
    model.metadata = kept + [entry]
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _name(n: Any) -> str:
    return n.decode() if isinstance(n, bytes) else str(n or "")


def read_spec(model_bytes: bytes) -> dict[str, Any] | None:
    return read_embedded_spec(model_bytes)


def metadata_names(model_bytes: bytes) -> list[str]:
    """Names of all metadata entries (the converter adds its own, e.g. min_runtime_version)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(model_bytes, 0)
    return [(model.Metadata(i).Name() or b"").decode() for i in range(model.MetadataLength())]
