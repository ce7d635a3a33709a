"""Parity test vectors: the proof that the phone preprocesses exactly as training did.

For real radiographs this writes what the Android core receives (ARGB pixels, the
Bitmap.getPixels layout) and what it must produce at each step (letterboxed uint8 canvas,
float input, quantised input) plus, for the shipped model, the raw output tensor LiteRT
returned here and the probabilities/decision expected from it. android_demo/core's tests
read the directory (format "fracture-edge/parity-vectors", documented in android_demo/README.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .fsutil import atomic_dir, write_json
from .imageio import read_image
from .preprocess import PreprocessSpec, letterbox_u8, normalize
from .runtime import EdgeModel

TOLERANCE = {"input_f32_abs": 1e-5, "u8_max_diff": 1, "u8_mismatch_fraction": 0.001, "quantized_max_diff": 1, "prob_abs": 1e-6}


def to_argb(pixels: np.ndarray) -> np.ndarray:
    """Decoded pixels -> int32 0xAARRGGBB per pixel (opaque), as Android's Bitmap.getPixels gives them."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        a = np.clip(np.floor(a + 0.5), 0, 255).astype(np.uint8)
    rgb = np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a[:, :, :3]
    r, g, b = (rgb[:, :, i].astype(np.uint32) for i in range(3))
    return ((np.uint32(0xFF) << 24) | (r << 16) | (g << 8) | b).view(np.int32)


def argb_to_rgb(argb: np.ndarray) -> np.ndarray:
    u = argb.view(np.uint32)
    return np.stack([(u >> 16) & 0xFF, (u >> 8) & 0xFF, u & 0xFF], axis=-1).astype(np.uint8)


def write_vectors(model: EdgeModel, images: list[Path], out: str | Path) -> dict[str, Any]:
    """Write manifest.json and binary files for each image; returns the manifest."""
    spec: PreprocessSpec = model.preprocess_spec
    cases = []
    with atomic_dir(out) as tmp:
        for path in images:
            argb = to_argb(read_image(path).pixels)
            rgb = argb_to_rgb(argb)  # exactly the pixels the phone gets, not a re-decode
            u8 = letterbox_u8(rgb, spec)
            x = normalize(u8, spec)
            name = path.stem
            case: dict[str, Any] = {"name": name, "width": int(argb.shape[1]), "height": int(argb.shape[0]),
                                    "argb": f"{name}.argb.bin", "letterbox_u8": f"{name}.u8.bin", "input_f32": f"{name}.f32.bin",
                                    "output_raw": f"{name}.out.bin"}
            (tmp / case["argb"]).write_bytes(argb.astype("<i4").tobytes())
            (tmp / case["letterbox_u8"]).write_bytes(u8.tobytes())
            (tmp / case["input_f32"]).write_bytes(x.astype("<f4").tobytes())
            x_in = model.quantize_input(x)
            if model.spec.input.dtype in ("uint8", "int8"):
                case["input_q"] = f"{name}.q.bin"
                (tmp / case["input_q"]).write_bytes(x_in.tobytes())
            raw = model.invoke_raw(x_in)
            (tmp / case["output_raw"]).write_bytes(raw.astype(raw.dtype.newbyteorder("<")).tobytes())
            probs = model.predict_canvases(u8[None])[0]
            label_probs = {lbl: float(p) for lbl, p in zip(model.labels, probs)}
            if model.task == "binary":
                p_pos = label_probs[model.positive_label]
                decision = p_pos >= model.threshold
                label = model.positive_label if decision else next(lbl for lbl in model.labels if lbl != model.positive_label)
            else:
                decision, label = None, model.labels[int(np.argmax(probs))]
            case["expected"] = {"probabilities": label_probs, "label": label, "decision": decision}
            cases.append(case)
        manifest = {"format": "fracture-edge/parity-vectors", "version": 1, "spec": model.spec.to_dict(), "tolerance": TOLERANCE,
                    "model_file": model.path.name, "model_sha256": model.sha256, "cases": cases}
        write_json(tmp / "manifest.json", manifest)
    return manifest
