"""Parity test vectors: the proof that the phone preprocesses exactly as training did.

For real radiographs this writes what the Android core receives (ARGB pixels, the
Bitmap.getPixels layout) and what it must produce at each step (letterboxed uint8 canvas,
float input, quantised input) plus, for each real model, the raw output tensor LiteRT
returned here and the probabilities/decision expected from it. android_demo/core's tests
read the directory (format "fracture-edge/parity-vectors", documented in android_demo/README.md).

``manifest.json`` is a list with one entry per spec: every model given (the int8 model, the fp16
GPU model, ...), then preprocessing-only specs the phone can also get (VGG16/ResNet50-style
3-channel caffe mean, its 1-channel variant, a non-square input), which have no model to run.
Besides the radiographs, each set has a large (6x) and a small (smaller than the input) version
of the first one, so both the downscaling and the upscaling paths are held to Python.
``dicom/`` holds DICOM files made with pydicom (explicit and implicit little endian, 8 and 16 bit,
signed, MONOCHROME1/2, rescale, window, several frames, and an RLE-compressed file the phone must
refuse) with pydicom's decoded grey image and canvas for each (format "fracture-edge/dicom-vectors");
``png16/`` 16-bit greyscale PNGs (every row filter) with the min-max-windowed grey image Python decodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .fsutil import atomic_dir, write_json
from .imageio import read_image
from .inference import decide
from .preprocess import PreprocessSpec, letterbox_u8, normalize
from .runtime import EdgeModel

TOLERANCE = {"input_f32_abs": 1e-5, "u8_max_diff": 1, "u8_mismatch_fraction": 0.001, "quantized_max_diff": 1, "prob_abs": 1e-6}
LARGE_FACTOR = 6  # 373x454 radiograph -> 2238x2724, a phone photo's order of size
SMALL_LONG_SIDE = 150  # below the 224 px input: the letterbox upscales


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


def source_images(images: Sequence[Path], size_variants: bool = True) -> list[tuple[str, np.ndarray]]:
    """(name, ARGB) for each radiograph, plus a large and a small version of the first one."""
    out = [(p.stem, to_argb(read_image(p).pixels)) for p in images]
    if size_variants and out:
        name, argb = out[0]
        rgb = Image.fromarray(argb_to_rgb(argb))
        w, h = rgb.size
        big = rgb.resize((w * LARGE_FACTOR, h * LARGE_FACTOR), Image.Resampling.BICUBIC)
        s = SMALL_LONG_SIDE / max(w, h)
        small = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC)
        out += [(f"{name}_large", to_argb(np.asarray(big))), (f"{name}_small", to_argb(np.asarray(small)))]
    return out


def variant_specs(base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Model specs the phone can get without a model here: ImageNet-backbone normalisations."""
    out = []
    for key, pre in (
        ("caffe3", PreprocessSpec.for_arch("vgg16", 224)),
        ("caffe1", PreprocessSpec.for_arch("resnet50", 224, channels=1)),
        ("caffe3_256x192", PreprocessSpec.for_arch("resnet50", (256, 192))),
        ("lite3", PreprocessSpec.for_arch("efficientnet_lite0", 224)),  # EfficientNet-Lite: (u8 - 127) / 128
    ):
        spec = dict(base)  # the typed spec's dict: no file name or file hash to drop
        spec.update(
            {
                "model_id": f"preprocess-only-{key}",
                "precision": "fp32",
                "preprocess": pre.to_dict(),
                "input": {"shape": [1, *pre.input_shape], "dtype": "float32"},
                "output": {
                    "shape": list(base["output"]["shape"]),
                    "dtype": "float32",
                    "activation": base["output"].get("activation"),
                },
            }
        )
        out.append((key, spec))
    return out


def _expected(model: EdgeModel, u8: np.ndarray) -> dict[str, Any]:
    probs = model.predict_canvases(u8[None])[0]
    label, _, decision = decide(model, probs)  # the one decision rule (edge.core.inference)
    return {
        "probabilities": {lbl: float(p) for lbl, p in zip(model.labels, probs, strict=True)},
        "label": label,
        "decision": decision,
    }


def _write_set(
    tmp: Path, key: str, spec: dict[str, Any], sources: list[tuple[str, np.ndarray]], model: EdgeModel | None
) -> dict[str, Any]:
    """One manifest entry: a case per source image for ``spec`` (and ``model``, when there is one)."""
    pre = PreprocessSpec.from_dict(spec["preprocess"])
    cases = []
    for name, argb in sources:
        u8 = letterbox_u8(argb_to_rgb(argb), pre)  # exactly the pixels the phone gets, not a re-decode
        x = normalize(u8, pre)
        case: dict[str, Any] = {
            "name": name,
            "width": int(argb.shape[1]),
            "height": int(argb.shape[0]),
            "argb": f"{name}.argb.bin",
            "letterbox_u8": f"{key}-{name}.u8.bin",
            "input_f32": f"{key}-{name}.f32.bin",
        }
        (tmp / case["letterbox_u8"]).write_bytes(u8.tobytes())
        (tmp / case["input_f32"]).write_bytes(x.astype("<f4").tobytes())
        if model is not None:
            x_in = model.quantize_input(x)
            if spec["input"]["dtype"] in ("uint8", "int8"):
                case["input_q"] = f"{key}-{name}.q.bin"
                (tmp / case["input_q"]).write_bytes(x_in.tobytes())
            raw = model.invoke_raw(x_in)
            case["output_raw"] = f"{key}-{name}.out.bin"
            (tmp / case["output_raw"]).write_bytes(raw.astype(raw.dtype.newbyteorder("<")).tobytes())
            case["expected"] = _expected(model, u8)
        cases.append(case)
    entry: dict[str, Any] = {
        "format": "fracture-edge/parity-vectors",
        "version": 1,
        "spec": spec,
        "tolerance": TOLERANCE,
        "cases": cases,
    }
    if model is not None:
        entry.update({"model_file": model.path.name, "model_sha256": model.sha256})
    return entry


def write_vectors(
    models: EdgeModel | Sequence[EdgeModel],
    images: Sequence[Path],
    out: str | Path,
    spec_variants: bool = True,
    size_variants: bool = True,
) -> list[dict[str, Any]]:
    """Write manifest.json (a list, first model first) and the binary files; returns the manifest entries."""
    models = [models] if isinstance(models, EdgeModel) else list(models)
    sources = source_images(images, size_variants)
    entries = []
    with atomic_dir(out) as tmp:
        for name, argb in sources:
            (tmp / f"{name}.argb.bin").write_bytes(argb.astype("<i4").tobytes())
        for i, model in enumerate(models):
            entries.append(_write_set(tmp, f"m{i}-{model.precision}", model.spec.to_dict(), sources, model))
        if spec_variants and models:
            entries += [_write_set(tmp, key, spec, sources, None) for key, spec in variant_specs(models[0].spec.to_dict())]
        write_json(tmp / "manifest.json", entries)
        if models:
            pre = models[0].preprocess_spec
            for sub, writer in (("dicom", write_dicom_vectors), ("png16", write_png16_vectors)):
                (tmp / sub).mkdir()
                writer(tmp / sub, pre)
    return entries


# ---- DICOM: files made here, decoded by pydicom (edge.core.imageio), read by the phone's own reader ----
DICOM_FORMAT = "fracture-edge/dicom-vectors"
# (name, transfer syntax, bits, signed, photometric, slope, intercept, window (centre, width) or None, frames)
DICOM_CASES = [
    ("explicit_u8_mono2", "explicit", 8, False, "MONOCHROME2", None, None, None, 1),
    ("implicit_u16_mono2_window", "implicit", 16, False, "MONOCHROME2", None, None, (2100.0, 1800.0), 1),
    ("explicit_s16_ct_rescale_window", "explicit", 16, True, "MONOCHROME2", 1.0, -1024.0, (40.0, 400.0), 1),
    ("implicit_u16_mono1_minmax", "implicit", 16, False, "MONOCHROME1", 0.5, 10.0, None, 1),
    ("explicit_u16_multiframe", "explicit", 16, False, "MONOCHROME2", None, None, (2000.0, 3000.0), 3),
    ("explicit_u8_rle_compressed", "rle", 8, False, "MONOCHROME2", None, None, None, 1),
]


def _dicom_pixels(rows: int, cols: int, bits: int, signed: bool, frames: int) -> np.ndarray:
    """A smooth ramp with a ring and a fine texture, filling most of the stored range."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    ring = 0.3 * np.cos(np.hypot(x - cols / 2, y - rows / 2) / 3.0)
    base = (x / cols + y / rows) / 2.0 * 0.6 + 0.2 + ring * 0.5 + ((x * 7 + y * 3) % 5) / 40.0
    lo, hi = (-1000, 1500) if signed else (0, 4095 if bits == 16 else 255)  # CT-like; 12 bits stored in 16 (X-ray)
    stack = [np.clip(lo + (base + 0.05 * f) * (hi - lo), lo, hi) for f in range(frames)]
    dtype = {(8, False): np.uint8, (16, False): np.uint16, (16, True): np.int16}[(bits, signed)]
    return np.round(np.stack(stack) if frames > 1 else stack[0]).astype(dtype)


def make_dicom(
    path: Path,
    syntax: str,
    bits: int,
    signed: bool,
    photometric: str,
    slope: float | None,
    intercept: float | None,
    window: tuple[float, float] | None,
    frames: int,
) -> None:
    """A minimal but valid secondary-capture DICOM file written by pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        RLELossless,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    arr = _dicom_pixels(37, 29, bits, signed, frames)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[path.name])
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if syntax == "implicit" else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName = "OT", "Parity^Vector"  # a tag the phone must never log
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 37, 29, 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = (
        bits,
        12 if bits == 16 and not signed else bits,
        (12 if bits == 16 and not signed else bits) - 1,
    )
    ds.PixelRepresentation = int(signed)
    if frames > 1:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = arr.tobytes()
    if syntax == "rle":
        ds.compress(RLELossless, arr, encoding_plugin="pydicom")  # gdcm's RLE encoder aborts on odd sizes
    ds.save_as(path, enforce_file_format=True)


def write_dicom_vectors(out: Path, spec: PreprocessSpec) -> dict[str, Any]:
    """The DICOM files and, for each, pydicom's grey image (float64) and the letterboxed canvas."""
    from .errors import ImageReadError

    cases = []
    for name, syntax, bits, signed, photometric, slope, intercept, window, frames in DICOM_CASES:
        path = out / f"{name}.dcm"
        make_dicom(path, syntax, bits, signed, photometric, slope, intercept, window, frames)
        case: dict[str, Any] = {"name": name, "file": path.name, "transfer_syntax": syntax}
        if syntax == "rle":  # decodable by pydicom here, refused on the phone ("send to server")
            case["phone_error"] = "compressed"
        try:
            grey = np.asarray(read_image(path).pixels, dtype=np.float64)
        except ImageReadError as e:
            case["python_error"] = e.message
        else:
            case.update(
                {
                    "width": int(grey.shape[1]),
                    "height": int(grey.shape[0]),
                    "grey_f64": f"{name}.grey.bin",
                    "letterbox_u8": f"{name}.u8.bin",
                }
            )
            (out / case["grey_f64"]).write_bytes(grey.astype("<f8").tobytes())
            (out / case["letterbox_u8"]).write_bytes(letterbox_u8(grey, spec).tobytes())
        cases.append(case)
    manifest = {"format": DICOM_FORMAT, "version": 1, "preprocess": spec.to_dict(), "grey_abs": 1e-9, "cases": cases}
    write_json(out / "manifest.json", manifest)
    return manifest


# ---- 16-bit PNG: written here with each PNG row filter, windowed by edge.core.imageio --------
def _filter_row(kind: int, row: bytes, prev: bytes, bpp: int = 2) -> bytes:
    """PNG row filter ``kind`` (0 none, 1 sub, 2 up, 3 average, 4 Paeth) applied to one row."""
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        else:
            pred = (0, a, b, (a + b) // 2)[kind]
        out[i] = (x - pred) & 0xFF
    return bytes(out)


def png16_bytes(values: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG whose rows cycle through the five filter types (Pillow picks one)."""
    import struct
    import zlib

    h, w = values.shape
    rows = values.astype(">u2").tobytes()
    stride, prev, raw = 2 * w, bytes(2 * w), bytearray()
    for y in range(h):
        row = rows[y * stride : (y + 1) * stride]
        raw += bytes([y % 5]) + _filter_row(y % 5, row, prev)
        prev = row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")


def write_png16_vectors(out: Path, spec: PreprocessSpec) -> dict[str, Any]:
    """16-bit PNGs (a detector-like 12-bit ramp, and a real radiograph scaled to 16 bits) with
    Python's decoded grey image and canvas for each (format "fracture-edge/png16-vectors")."""
    y, x = np.mgrid[0:41, 0:53]
    ramp = (300 + 13 * x + 57 * y + 200 * np.cos(x / 3.0) * np.sin(y / 5.0)).astype(np.uint16)
    radiograph = read_image(min((Path(__file__).parent.parent / "assets" / "samples" / "fractured").glob("*.jpg"))).pixels
    scaled = (
        np.asarray(radiograph, dtype=np.float64) if np.asarray(radiograph).ndim == 2 else np.asarray(radiograph)[..., 0] * 1.0
    )
    cases = []
    for name, values in (("ramp_12bit", ramp), ("radiograph_16bit", (scaled * 257 + 5).astype(np.uint16))):
        (out / f"{name}.png").write_bytes(png16_bytes(values))
        grey = np.asarray(read_image(out / f"{name}.png").pixels, dtype=np.float64)
        (out / f"{name}.grey.bin").write_bytes(grey.astype("<f8").tobytes())
        (out / f"{name}.u8.bin").write_bytes(letterbox_u8(grey, spec).tobytes())
        cases.append(
            {
                "name": name,
                "file": f"{name}.png",
                "width": int(grey.shape[1]),
                "height": int(grey.shape[0]),
                "grey_f64": f"{name}.grey.bin",
                "letterbox_u8": f"{name}.u8.bin",
            }
        )
    manifest = {
        "format": "fracture-edge/png16-vectors",
        "version": 1,
        "preprocess": spec.to_dict(),
        "grey_abs": 1e-9,
        "cases": cases,
    }
    write_json(out / "manifest.json", manifest)
    return manifest
