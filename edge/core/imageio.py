"""Decoding radiographs: JPEG, PNG, WebP, BMP, TIFF (grey or RGB) and DICOM (edge.core.dicom).

Everything returns a 2D float64 grey image in 0..255 or an 8-bit array, ready for
:mod:`edge.core.preprocess`. The cost of every image is checked from its header before any
pixel is decoded (edge.core.limits). Truncation is detected by the decoders themselves:
JPEG through libjpeg-turbo in strict mode (simplejpeg: "premature end of data" is an error,
so a cut file with its end marker re-appended fails), PNG through libpng (imagecodecs, whose
error handler raises instead of printing "libpng error" on stderr as cv2's does), which refuses
a stream with fewer rows than the header declares. EXIF orientation is applied, as the phone does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from .errors import ImageReadError
from .limits import DEFAULT_LIMITS, Limits, check_budget

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated image must fail, not be padded with grey
Image.MAX_IMAGE_PIXELS = None  # our own budget (limits.py) is checked first, in bytes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES | DICOM_SUFFIXES

# bytes per decoded pixel for each Pillow mode (before our own conversion to grey or RGB)
_MODE_BYTES = {
    "1": 1,
    "L": 1,
    "P": 3,
    "LA": 4,
    "PA": 4,
    "RGB": 3,
    "RGBA": 4,
    "CMYK": 4,
    "YCbCr": 3,
    "I;16": 2,
    "I;16B": 2,
    "I;16L": 2,
    "I": 4,
    "F": 4,
}
_ORIENT = {  # EXIF orientation -> the numpy form of PIL.ImageOps.exif_transpose's operation
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


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
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def is_supported_path(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def read_image(path: str | Path, frame: int | None = None, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.max_decoded_bytes + (64 << 20):  # no format we read is this much larger than its pixels
            raise ImageReadError(f"file too large ({size >> 20} MB)", path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError("file not found", path) from None
    except IsADirectoryError:
        raise ImageReadError("is a directory, not an image", path) from None
    except OSError as e:
        raise ImageReadError(f"cannot read file ({e.strerror})", path) from None
    return decode_bytes(data, name=str(path), frame=frame, limits=limits)


def decode_bytes(
    data: bytes, name: str = "<upload>", frame: int | None = None, max_pixels: int | None = None, limits: Limits = DEFAULT_LIMITS
) -> Decoded:
    """Any supported image -> Decoded, or ImageReadError. Nothing else escapes (see tests/test_fuzz.py)."""
    if not data:
        raise ImageReadError("empty file", name)
    kind = sniff(data)
    if kind is None:
        raise ImageReadError("not a PNG, JPEG, WebP or DICOM image (unknown format)", name)
    limits = limits.with_pixels(max_pixels)
    try:
        if kind == "dicom":
            from .dicom import decode_dicom

            pixels, mode, frames = decode_dicom(data, name, frame, limits)
            return Decoded(pixels, "dicom", mode, frames)
        if frame not in (None, 0):
            raise ImageReadError(f"frame {frame} out of range (the file has 1)", name)
        return _decode_raster(data, name, kind, limits)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError("image too large (out of memory while decoding)", name) from None
    except Exception as e:  # a decoder bug on hostile bytes: one line, the type only (no values)
        raise ImageReadError(f"corrupt image ({type(e).__name__})", name) from None


def _decode_raster(data: bytes, name: str, kind: str, limits: Limits) -> Decoded:
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            w, h = im.size
            mode = im.mode
            check_budget(name, w, h, 1, _MODE_BYTES.get(mode, 4), 1, limits)
            orientation = _orientation(im)
            if kind == "jpeg":
                arr = _decode_jpeg(data, name, im)
            elif kind == "png":
                arr = _decode_png(data, name, (h, w))
            else:
                im.load()
                arr = _pil_array(im)
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        raise ImageReadError("image too large (decompression bomb guard)", name) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        why = "truncated image" if "truncated" in str(e) else f"corrupt image ({type(e).__name__})"
        raise ImageReadError(why, name) from None
    if orientation in _ORIENT:
        arr = np.ascontiguousarray(_ORIENT[orientation](arr))
    if arr.ndim == 3 and arr.shape[2] == 3 and _is_grey_rgb(arr):
        arr = arr[:, :, 0]  # grey content stored as RGB: keep the exact values
    return Decoded(arr, kind, mode)


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block is not a broken image: keep the stored orientation
        return 1


def _decode_jpeg(data: bytes, name: str, im: Image.Image) -> np.ndarray:
    import simplejpeg

    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageReadError("truncated JPEG (end-of-image marker missing)", name, "re-export or exclude the file")
    cmyk = im.mode not in ("L", "RGB", "YCbCr")
    try:  # strict: libjpeg's recoverable errors ("premature end of data segment") are errors
        arr = simplejpeg.decode_jpeg(data, colorspace="CMYK" if cmyk else ("GRAY" if im.mode == "L" else "RGB"), strict=True)
    except ValueError as e:
        why = "truncated JPEG (data ends early)" if "premature" in str(e).lower() else "corrupt JPEG"
        raise ImageReadError(why, name, "re-export or exclude the file") from None
    if cmyk:  # rare in radiology: checked above by libjpeg, converted by Pillow
        im.load()
        return np.asarray(im.convert("RGB"))
    return arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr


def _decode_png(data: bytes, name: str, shape: tuple[int, int]) -> np.ndarray:
    import imagecodecs

    try:
        arr = imagecodecs.png_decode(data)  # RGB order, palette and low bit depths expanded
    except imagecodecs.PngError:  # libpng: "Not enough image data", CRC, bad zlib
        arr = None
    if arr is None or arr.shape[:2] != shape:
        raise ImageReadError("truncated or corrupt PNG (image data ends early or is damaged)", name)
    if arr.ndim == 3:
        arr = arr[:, :, 0] if arr.shape[2] == 2 else arr[:, :, :3]  # alpha dropped
    if arr.ndim == 3 and arr.dtype == np.uint16:  # as Pillow opens 16-bit colour: the high byte
        arr = (arr >> 8).astype(np.uint8)
    elif arr.dtype == np.uint16:  # 16-bit grey: min-max windowed to 0..255 (as on the phone)
        arr = _window_minmax(arr.astype(np.float64))
    return arr


def _pil_array(im: Image.Image) -> np.ndarray:
    if im.mode in ("L", "RGB"):
        return np.asarray(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _window_minmax(np.asarray(im, dtype=np.float64))
    return np.asarray(im.convert("RGB"))


def _is_grey_rgb(arr: np.ndarray) -> bool:
    return bool(np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 1], arr[:, :, 2]))


def _window_minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return np.zeros_like(a, dtype=np.float64)
    return (a - lo) * (255.0 / (hi - lo))
