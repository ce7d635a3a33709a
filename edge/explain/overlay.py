"""Heatmap overlays as PNG: the radiograph in grey, the heatmap in colour where it is strong,
and a caption with the class, its probability and the method."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.preprocess import resize_bilinear, to_grey


@lru_cache(maxsize=4)
def _lut(name: str = "jet") -> np.ndarray:
    from matplotlib import colormaps  # colour tables only; no pyplot, no backend

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.float32)


def overlay_rgb(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.55, max_side: int | None = None) -> np.ndarray:
    """H x W x 3 uint8: grey image blended with the colour-mapped heatmap (weighted by the heat
    itself, so cold regions keep the plain radiograph)."""
    grey = to_grey(pixels)
    heat = np.asarray(heat, dtype=np.float64)
    if heat.shape != grey.shape:
        heat = np.clip(resize_bilinear(heat, *grey.shape), 0.0, 1.0)
    h, w = grey.shape
    if max_side and max(h, w) > max_side:  # overlays are for eyes: no need for 3000 px
        s = max_side / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        grey, heat = resize_bilinear(grey, nh, nw), resize_bilinear(heat, nh, nw)
    # float32 and a uint8 index: this runs on every server request
    colour = _lut()[(np.clip(heat, 0.0, 1.0) * 255).astype(np.uint8)]
    a = (alpha * heat).astype(np.float32)[..., None]
    g = grey.astype(np.float32)[..., None]
    out = g + a * (colour - g)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def caption(label: str, probability: float, method_title: str, target_label: str | None = None) -> str:
    text = f"{label} {probability:.2f}"
    if target_label and target_label != label:
        return f"{text} | {method_title} for {target_label}"
    return f"{text} | {method_title}"


def draw_caption(rgb: np.ndarray, text: str) -> Image.Image:
    im = Image.fromarray(rgb, "RGB")
    size = max(11, min(28, im.width // 24))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(im)
    x0, y0, x1, y1 = draw.textbbox((6, 4), text, font=font)
    draw.rectangle((0, 0, x1 + 6, y1 + 4), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    return im


def overlay_png(pixels: np.ndarray, heat: np.ndarray, text: str, max_side: int | None = None) -> bytes:
    """The overlay as PNG bytes (in memory: the server never writes images to disk)."""
    im = draw_caption(overlay_rgb(pixels, heat, max_side=max_side), text)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False, compress_level=1)  # speed over bytes: ~3x faster
    return buf.getvalue()
