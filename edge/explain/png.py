"""PNG bytes for overlays, through OpenCV's libpng with the settings the server path needs.

libpng's default tries all five row filters on every row, which costs more than the compression
itself here. One "Up" filter (radiographs and heatmaps differ little from the row above) and zlib
level 1 keep the file as small as the adaptive choice in a fraction of the time. On four real
454x373 overlays (AMD EPYC, AVX2, shared machine; 30 interleaved rounds) this call and the
project's former numpy encoder with the same filter and level tied (fastest decile 8.6 vs 8.8 ms,
89 kB both); Pillow at compress_level 1 took 26 ms. A tie goes to the kept library. zlib's RLE
strategy (matches at distance one only: the runs of zeros the Up filter leaves) then took 7.1 ms
for 85 kB, against 8.2 ms for 89 kB with the default strategy (40 rounds).
"""

from __future__ import annotations

import cv2
import numpy as np

_TO_BGR = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}  # OpenCV stores colour as BGR(A)


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA) uint8 -> PNG bytes."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"encode_png takes uint8 pixels, not {a.dtype}")
    channels = 1 if a.ndim == 2 else a.shape[2] if a.ndim == 3 else 0
    if channels not in (1, 3, 4) or a.size == 0:
        raise ValueError(f"encode_png takes H x W, H x W x 3 or H x W x 4 pixels, not {a.shape}")
    if channels > 1:
        a = cv2.cvtColor(np.ascontiguousarray(a), _TO_BGR[channels])
    params = [
        cv2.IMWRITE_PNG_COMPRESSION,
        int(level),
        cv2.IMWRITE_PNG_FILTER,
        cv2.IMWRITE_PNG_FILTER_UP,
        cv2.IMWRITE_PNG_STRATEGY,
        cv2.IMWRITE_PNG_STRATEGY_RLE,
    ]
    ok, buf = cv2.imencode(".png", a, params)
    if not ok:  # OpenCV reports failure by flag, not exception
        raise ValueError(f"OpenCV could not encode a {a.shape} image as PNG")
    return buf.tobytes()
