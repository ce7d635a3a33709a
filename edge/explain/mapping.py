"""From a CAM over the letterboxed model input back to the original image.

The model saw the image letterboxed into its input canvas (edge.core.preprocess). A CAM grid of
h x w cells covers that whole canvas, padding included; here it is upsampled to the canvas,
the padding is cut away (edge.core.preprocess.letterbox_geometry), and what remains is resampled
onto the original image (full-resolution heatmap) or onto a low-resolution grid covering the
original image's full extent (what the phone draws).
"""

from __future__ import annotations

import numpy as np

from edge.core.preprocess import PreprocessSpec, letterbox_geometry, resize_bilinear


def minmax(a: np.ndarray) -> np.ndarray:
    """Scale into 0..1; a flat map (no evidence anywhere) becomes all zeros, not NaN."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if not np.isfinite(hi - lo) or hi - lo <= 1e-12:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def content_cam(cam: np.ndarray, image_hw: tuple[int, int], spec: PreprocessSpec) -> np.ndarray:
    """The CAM over the image content only, at the canvas resolution of the content (nh x nw)."""
    H, W = spec.size
    top, left, nh, nw = letterbox_geometry(image_hw[0], image_hw[1], spec.size)
    canvas = resize_bilinear(np.asarray(cam, dtype=np.float64), H, W)
    return canvas[top : top + nh, left : left + nw]


def grid_shape(cam_shape: tuple[int, int], image_hw: tuple[int, int], spec: PreprocessSpec) -> tuple[int, int]:
    """Keep the CAM's own cell density: the content covers nh/H of the canvas, so as many rows."""
    _, _, nh, nw = letterbox_geometry(image_hw[0], image_hw[1], spec.size)
    rows = max(1, int(np.floor(cam_shape[0] * nh / spec.size[0] + 0.5)))
    cols = max(1, int(np.floor(cam_shape[1] * nw / spec.size[1] + 0.5)))
    return rows, cols


def to_grid(cam: np.ndarray, image_hw: tuple[int, int], spec: PreprocessSpec) -> np.ndarray:
    """Low-resolution rows x cols grid in 0..1 covering exactly the original image."""
    rows, cols = grid_shape(cam.shape, image_hw, spec)
    return minmax(resize_bilinear(content_cam(cam, image_hw, spec), rows, cols))


def to_image(cam: np.ndarray, image_hw: tuple[int, int], spec: PreprocessSpec) -> np.ndarray:
    """Full-resolution heatmap (image_hw) in 0..1 aligned with the original pixels."""
    return minmax(resize_bilinear(content_cam(cam, image_hw, spec), int(image_hw[0]), int(image_hw[1])))
