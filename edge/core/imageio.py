"""Decoding radiographs: PNG and JPEG (grey or RGB) and DICOM (X-ray, CT and MRI slices).

Everything returns a 2D float64 grey image in 0..255 or an 8-bit array, ready for
:mod:`edge.preprocess`. Truncated and corrupt files raise :class:`ImageReadError` with the
file named; nothing here ever fills missing rows with grey silently.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from .errors import ImageReadError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG must fail, not be padded with grey
Image.MAX_IMAGE_PIXELS = 64_000_000  # decompression-bomb guard; callers may lower it

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES | DICOM_SUFFIXES


@dataclass
class Decoded:
    """A decoded 2D image (one slice or frame) and what is known about its source."""

    pixels: np.ndarray  # HxW (grey) or HxWx3, uint8 or float64 in 0..255
    kind: str  # "jpeg", "png", "dicom", ...
    mode: str  # "L", "RGB", "MONOCHROME2", ...
    frames: int = 1


def sniff(data: bytes) -> str | None:
    """The format from the content itself, never from the file name."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def is_supported_path(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def read_image(path: str | Path, frame: int | None = None) -> Decoded:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError("file not found", path) from None
    except OSError as e:
        raise ImageReadError(f"cannot read file ({e.strerror})", path) from None
    return decode_bytes(data, name=str(path), frame=frame)


def decode_bytes(data: bytes, name: str = "<upload>", frame: int | None = None, max_pixels: int | None = None) -> Decoded:
    if not data:
        raise ImageReadError("empty file", name)
    kind = sniff(data)
    if kind is None:
        raise ImageReadError("not a PNG, JPEG or DICOM image (unknown format)", name)
    if kind == "dicom":
        return _decode_dicom(data, name, frame, max_pixels)
    return _decode_pil(data, name, kind, max_pixels)


def _decode_pil(data: bytes, name: str, kind: str, max_pixels: int | None) -> Decoded:
    if kind == "jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageReadError("truncated JPEG (end-of-image marker missing)", name, "re-export or exclude the file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            limit = max_pixels or Image.MAX_IMAGE_PIXELS
            if w * h > limit:
                raise ImageReadError(f"image too large ({w}x{h} pixels, limit {limit})", name)
            mode = im.mode
            im.load()
            if mode in ("L", "RGB"):
                arr = np.asarray(im)
            elif mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = _window_minmax(np.asarray(im, dtype=np.float64))
            else:
                arr = np.asarray(im.convert("RGB"))
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        raise ImageReadError("image too large (decompression bomb guard)", name) from None
    except (OSError, ValueError, SyntaxError) as e:
        msg = str(e)
        why = "truncated image" if "truncated" in msg else f"corrupt image ({msg})"
        raise ImageReadError(why, name) from None
    if arr.ndim == 3 and arr.shape[2] == 3 and _is_grey_rgb(arr):
        arr = arr[:, :, 0]  # grey content stored as RGB: keep the exact values
    return Decoded(arr, kind, mode)


def _is_grey_rgb(arr: np.ndarray) -> bool:
    return bool(np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 1], arr[:, :, 2]))


def _window_minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(a)), float(np.max(a))
    if hi <= lo:
        return np.zeros_like(a, dtype=np.float64)
    return (a - lo) * (255.0 / (hi - lo))


def _decode_dicom(data: bytes, name: str, frame: int | None, max_pixels: int | None) -> Decoded:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as e:  # pydicom raises many types on bad input; all mean "unreadable"
        raise ImageReadError(f"unreadable DICOM ({type(e).__name__})", name) from None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError("DICOM has no pixel data (not an image object)", name)
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    # all frames are decoded at once, so the limit covers the whole series (decompression bombs)
    if rows * cols == 0 or rows * cols * n_frames > limit:
        raise ImageReadError(f"DICOM image size {rows}x{cols}x{n_frames} frames not accepted (limit {limit} pixels)", name)
    try:
        arr = ds.pixel_array
    except Exception as e:
        raise ImageReadError(f"DICOM pixel data cannot be decoded ({type(e).__name__}: {e})", name) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if n_frames > 1:
        idx = n_frames // 2 if frame is None else frame
        if not 0 <= idx < n_frames:
            raise ImageReadError(f"frame {idx} out of range (the file has {n_frames})", name)
        arr = arr[idx]
    elif frame not in (None, 0):
        raise ImageReadError(f"frame {frame} out of range (the file has 1)", name)
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422") or arr.ndim == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        return Decoded(np.asarray(arr, dtype=np.uint8), "dicom", "RGB", n_frames)
    values = apply_modality_lut(arr, ds).astype(np.float64)
    if "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        grey = np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64) * (255.0 / (2**bits - 1))
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        grey = _apply_window(values, float(np.atleast_1d(ds.WindowCenter)[0]), float(np.atleast_1d(ds.WindowWidth)[0]))
    else:
        grey = _window_minmax(values)
    if photometric == "MONOCHROME1":  # high values are dark: invert so bone is bright
        grey = 255.0 - grey
    return Decoded(grey, "dicom", photometric, n_frames)


def _apply_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM linear windowing (PS3.3 C.11.2.1.2.1) straight onto 0..255."""
    width = max(width, 1.0)
    y = ((x - (center - 0.5)) / (width - 1 if width > 1 else 1) + 0.5) * 255.0
    return np.clip(y, 0.0, 255.0)
