"""DICOM decoding that no field value can crash and no field value can leak.

Every element is read defensively (a text NumberOfFrames, an empty WindowCenter, a VOI LUT
sequence with no item...): one bad file is one ImageReadError naming the file and the field,
never a traceback. Messages and logs name fields and exception types, never values (patient
data). Deflated transfer syntax is inflated here, streamed and capped, before pydicom sees it.
"""

from __future__ import annotations

import io
import logging
import warnings
import zlib
from typing import Any

import numpy as np

from .errors import ImageReadError
from .limits import DEFAULT_LIMITS, Limits, check_budget

DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
DICOM_EXTRA = "pip install 'fracture-edge[dicom]'"


def _import_pydicom() -> Any:  # the pydicom module
    """Import pydicom and silence it, here and only here: pydicom resets its logger when first
    imported, so silencing it earlier does not hold. Its warnings quote element values."""
    import pydicom

    logger = logging.getLogger("pydicom")
    logger.setLevel(logging.CRITICAL + 10)
    logger.handlers.clear()
    logger.propagate = False
    # Its value checks on reading quote the offending value (a patient name swallowed by a damaged length, say):
    # not raised at all, because the ignore filter below is undone by any later filter change in the process
    # (warnings.simplefilter("always") after import, pytest, a notebook). Decoding reads the values it needs itself.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    # the rest (no values seen so far; pydicom warns with stacklevel pointing at its caller: cover both modules)
    warnings.filterwarnings("ignore", module=r"(pydicom|edge\.core\.dicom)(\..*)?$")
    return pydicom


pydicom = _import_pydicom()


# --- defensive field reads -----------------------------------------------------------------
def _field(ds: Any, keyword: str) -> Any:
    """The value of an element, or None when absent, empty or unreadable (bad VR, bad bytes)."""
    try:
        if keyword not in ds:
            return None
        value = ds[keyword].value
    except Exception:  # pydicom converts raw elements lazily: any failure means "unreadable"
        return None
    if value is None or value == "" or (hasattr(value, "__len__") and not isinstance(value, (str, bytes)) and len(value) == 0):
        return None
    return value


def _number(ds: Any, keyword: str, name: str, default: float | None = None, kind: type = float) -> Any:
    """A numeric field (first value if multi-valued); a present but non-numeric one is an error."""
    raw = _field(ds, keyword)
    if raw is None:
        return default
    if isinstance(raw, (list, tuple)) or type(raw).__name__ == "MultiValue":
        raw = raw[0]  # never empty: _field returns None for an empty value
        if raw is None:  # an empty first value (a DS of "\\40")
            return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ImageReadError(f"DICOM field {keyword} is not a number", name) from None
    if not np.isfinite(value):
        raise ImageReadError(f"DICOM field {keyword} is not a finite number", name)
    if kind is int:
        if value != int(value):
            raise ImageReadError(f"DICOM field {keyword} is not a whole number", name)
        return int(value)
    return value


def _text(ds: Any, keyword: str, default: str) -> str:
    raw = _field(ds, keyword)
    return str(raw).strip().upper() if isinstance(raw, str) else default


# --- reading the dataset ---------------------------------------------------------------------
def _inflate_capped(body: bytes, name: str, cap: int) -> bytes:
    """Raw-deflate ``body`` in chunks, refusing as soon as the output passes ``cap``."""
    too_large = ImageReadError(f"deflated DICOM too large (inflates past {cap // (1 << 20)} MB: decompression bomb)", name)
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    buf = body
    try:
        while buf and not d.eof:  # after the end of the stream only padding follows (it would stay the tail forever)
            out += d.decompress(buf, 1 << 20)
            if len(out) > cap:
                raise too_large
            buf = d.unconsumed_tail
        out += d.flush()  # what zlib still holds once the input is used up (less than its window)
    except zlib.error:
        raise ImageReadError("deflated DICOM data is corrupt", name) from None
    if len(out) > cap:
        raise too_large
    return bytes(out)


def _read_dataset(data: bytes, name: str, limits: Limits) -> Any:
    # the fp-taking meta reader is private in pydicom 3 (the public one opens a path); pinned <4
    from pydicom.filereader import _read_file_meta_info as read_file_meta_info
    from pydicom.filereader import read_dataset, read_preamble

    try:
        fp = io.BytesIO(data)
        read_preamble(fp, False)  # raises on a file without the DICM prefix, as dcmread would
        meta = read_file_meta_info(fp)
        if _field(meta, "TransferSyntaxUID") == DEFLATED:
            body = _inflate_capped(data[fp.tell() :], name, limits.max_decoded_bytes + (1 << 20))
            ds = read_dataset(io.BytesIO(body), is_implicit_VR=False, is_little_endian=True)
            ds.file_meta = meta  # the pixel decoders read the transfer syntax from here
        else:
            ds = pydicom.dcmread(io.BytesIO(data))
    except ImageReadError:
        raise
    except Exception as e:  # pydicom raises many types on bad input; all mean "unreadable"
        raise ImageReadError(f"unreadable DICOM ({type(e).__name__})", name) from None
    return ds


def _check_size(ds: Any, name: str, limits: Limits) -> tuple[int, int]:
    """Rows, Columns, frames and sample size from the header; refused before any pixel is decoded."""
    rows = _number(ds, "Rows", name, kind=int)
    cols = _number(ds, "Columns", name, kind=int)
    frames = _number(ds, "NumberOfFrames", name, 1, int)
    samples = _number(ds, "SamplesPerPixel", name, 1, int)
    bits = _number(ds, "BitsAllocated", name, 8, int)
    if not rows or not cols:
        raise ImageReadError("DICOM Rows/Columns missing or unreadable", name)
    # PS3.3 C.7.6.3.1.1: 1 or 3 samples (4, ARGB/CMYK, is retired and pydicom cannot decode it)
    if samples not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise ImageReadError("DICOM SamplesPerPixel/BitsAllocated not supported", name)
    check_budget(name, cols, rows, samples, max(bits // 8, 1), max(frames, 1), limits)
    return max(frames, 1), samples


def decode_dicom(data: bytes, name: str, frame: int | None, limits: Limits = DEFAULT_LIMITS) -> tuple[np.ndarray, str, int]:
    """DICOM bytes -> (2D grey float64 0..255 or HxWx3 uint8, photometric, frames)."""
    ds = _read_dataset(data, name, limits)
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError("DICOM has no pixel data (not an image object)", name)
    n_frames, _ = _check_size(ds, name, limits)
    idx = n_frames // 2 if frame is None else frame
    if not 0 <= idx < n_frames:
        raise ImageReadError(f"frame {idx} out of range (the file has {n_frames})", name)
    arr = _pixels(ds, name, n_frames)
    if n_frames > 1:
        if arr.shape[0] != n_frames:
            raise ImageReadError("DICOM NumberOfFrames does not match the pixel data", name)
        arr = arr[idx]
    photometric = _text(ds, "PhotometricInterpretation", "MONOCHROME2")
    try:
        return _to_display(ds, arr, photometric, name), photometric, n_frames
    except ImageReadError:
        raise
    except Exception as e:  # a field combination pydicom's LUT code rejects: name the type only
        raise ImageReadError(f"DICOM display fields cannot be applied ({type(e).__name__})", name) from None


def _pixels(ds: Any, name: str, n_frames: int) -> np.ndarray:
    tsyntax = str(_field(ds.file_meta, "TransferSyntaxUID") or "?")  # a FileDataset: file_meta may be empty, never absent
    try:
        return ds.pixel_array
    except Exception as e:
        msg = str(e)
        if tsyntax == JPEG_EXTENDED and "12-bit" in msg:  # no permissive pydicom plugin decodes these
            return _jpeg12_frames(ds, name, n_frames)
        # pydicom 3: "... plugins are missing dependencies"; a decoder that is installed but fails on the data
        # says "exceptions were raised by all available plugins" and is a decoding error, not a missing decoder
        if "missing dependencies" in msg:
            raise ImageReadError(
                f"no decoder installed for DICOM transfer syntax {tsyntax}", name, f"install the DICOM decoders: {DICOM_EXTRA}"
            ) from None
        raise ImageReadError(f"DICOM pixel data cannot be decoded ({type(e).__name__})", name) from None


def _jpeg12_frames(ds: Any, name: str, n: int) -> np.ndarray:
    """JPEG Extended 12-bit through imagecodecs (BSD, libjpeg-turbo 3): pydicom's gdcm plugin refuses
    12-bit and the plugin that takes it (pylibjpeg-libjpeg) is GPL-3."""
    try:
        import imagecodecs
    except ImportError:
        raise ImageReadError(
            f"no decoder installed for DICOM transfer syntax {JPEG_EXTENDED} (12-bit JPEG)",
            name,
            f"install the DICOM decoders: {DICOM_EXTRA}",
        ) from None
    from pydicom.encaps import generate_frames

    try:
        frames = [imagecodecs.jpeg8_decode(f) for f in generate_frames(ds.PixelData, number_of_frames=n)]
    except Exception as e:
        raise ImageReadError(f"DICOM pixel data cannot be decoded ({type(e).__name__})", name) from None
    return frames[0] if n == 1 else np.stack(frames)


def _to_display(ds: Any, arr: np.ndarray, photometric: str, name: str) -> np.ndarray:
    from pydicom.pixels import apply_voi_lut

    if arr.ndim == 3:  # three samples per pixel (pydicom 3 has converted YBR to RGB); the label is not trusted
        # wider samples: stretched over all channels together, truncated to uint8
        return arr if arr.dtype == np.uint8 else np.asarray(_minmax(arr), dtype=np.uint8)
    slope = _number(ds, "RescaleSlope", name, 1.0)
    intercept = _number(ds, "RescaleIntercept", name, 0.0)
    values = arr.astype(np.float64) * slope + intercept
    voi = _field(ds, "VOILUTSequence")
    center, width = _number(ds, "WindowCenter", name), _number(ds, "WindowWidth", name)
    if voi is not None:
        bits = _voi_bits(voi[0], name)
        grey = np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64) * (255.0 / (2**bits - 1))
        grey = np.clip(grey, 0.0, 255.0)
    elif center is not None and width is not None:
        grey = apply_window(values, center, width)
    else:
        grey = _minmax(values)
    if photometric == "MONOCHROME1":  # high values are dark: invert so bone is bright
        grey = 255.0 - grey
    return grey


def _voi_bits(item: Any, name: str) -> int:
    desc = _field(item, "LUTDescriptor")
    lut = _field(item, "LUTData")
    if desc is None or lut is None or len(desc) != 3:
        raise ImageReadError("DICOM VOI LUT sequence item is empty or incomplete", name)
    try:
        bits = int(desc[2])
    except (TypeError, ValueError):
        raise ImageReadError("DICOM VOI LUT descriptor is not numeric", name) from None
    if bits != 8 and not 10 <= bits <= 16:  # PS3.3 C.8.11.3.1.5; pydicom raises NotImplementedError for the rest
        raise ImageReadError("DICOM VOI LUT descriptor has an invalid bit depth", name)
    return bits


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return np.zeros_like(a, dtype=np.float64)
    return (a - lo) * (255.0 / (hi - lo))


def apply_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM linear windowing (PS3.3 C.11.2.1.2.1) straight onto 0..255."""
    width = max(width, 1.0)
    y = ((x - (center - 0.5)) / (width - 1 if width > 1 else 1) + 0.5) * 255.0
    return np.clip(y, 0.0, 255.0)
