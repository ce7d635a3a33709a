"""A minimal PNG encoder for 8-bit grey or RGB arrays, tuned for speed on the server path.

Pillow (and libpng through OpenCV) choose a filter per row by trying all five, which costs more
than the compression itself here: a 454x373 overlay took 13 ms in Pillow at compress_level 1.
Every row gets the "Up" filter instead (vectorised in numpy; smooth radiographs and heatmaps
differ little from the row above), then zlib at level 1: ~4.7 ms and a smaller file
(`edge bench explain` measures the whole request). Layout per the PNG specification (RFC 2083).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}  # grey, RGB, RGBA
_UP = 2  # PNG filter type 2: each byte minus the byte above it


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA) uint8 -> PNG bytes."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"encode_png takes uint8 pixels, not {a.dtype}")
    channels = 1 if a.ndim == 2 else a.shape[2]
    if a.ndim not in (2, 3) or channels not in _COLOUR_TYPE or a.size == 0:
        raise ValueError(f"encode_png takes H x W, H x W x 3 or H x W x 4 pixels, not {a.shape}")
    h, w = a.shape[:2]
    rows = np.ascontiguousarray(a).reshape(h, w * channels)
    raw = np.empty((h, w * channels + 1), np.uint8)
    raw[:, 0] = _UP
    raw[0, 1:] = rows[0]  # the row above the first one is defined as zeros
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 wrap-around is what the filter wants
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPE[channels], 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + _chunk(b"IEND", b"")
