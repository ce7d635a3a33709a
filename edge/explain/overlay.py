"""Heatmap overlays as PNG: the radiograph in grey, the heatmap in colour where it is strong,
and a caption with the class, its probability and the method."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.preprocess import to_grey


@lru_cache(maxsize=4)
def _lut(name: str = "jet") -> np.ndarray:
    from matplotlib import colormaps  # colour tables only; no pyplot, no backend

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.float32)


def _resize_f32(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Display-only resize in C (PIL, float32): this runs on every server request. Model inputs
    never go through here; they use edge.preprocess."""
    return np.asarray(Image.fromarray(np.asarray(a, dtype=np.float32), "F").resize((w, h), Image.Resampling.BILINEAR))


@lru_cache(maxsize=4)
def _blend_lut(alpha: float, name: str = "jet") -> np.ndarray:
    """256 heat levels x 256 grey levels -> RGB: the whole blend becomes one table lookup."""
    heat = np.arange(256, dtype=np.float32)[:, None, None] / 255.0
    grey = np.arange(256, dtype=np.float32)[None, :, None]
    colour = _lut(name)[:, None, :]
    out = grey + (alpha * heat) * (colour - grey)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def overlay_rgb(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.55, max_side: int | None = None) -> np.ndarray:
    """H x W x 3 uint8: grey image blended with the colour-mapped heatmap (weighted by the heat
    itself, so cold regions keep the plain radiograph)."""
    grey = pixels.astype(np.float32) if pixels.ndim == 2 else to_grey(pixels).astype(np.float32)
    h, w = grey.shape
    if max_side and max(h, w) > max_side:  # overlays are for eyes: no need for 3000 px
        s = max_side / max(h, w)
        h, w = max(1, round(h * s)), max(1, round(w * s))
        grey = _resize_f32(grey, h, w)
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != (h, w):
        heat = _resize_f32(heat, h, w)
    heat_u8 = (np.clip(heat, 0.0, 1.0) * 255).astype(np.uint8)
    grey_u8 = np.clip(grey + 0.5, 0, 255).astype(np.uint8)
    return _blend_lut(float(alpha))[heat_u8, grey_u8]  # this runs on every server request


def caption(label: str, probability: float, method_title: str, target_label: str | None = None) -> str:
    text = f"{label} {probability:.2f}"
    if target_label and target_label != label:
        return f"{text} | {method_title} for {target_label}"
    return f"{text} | {method_title}"


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # parsing the font costs milliseconds: once per size


def draw_caption(rgb: np.ndarray, text: str) -> Image.Image:
    im = Image.fromarray(rgb, "RGB")
    size = max(11, min(28, im.width // 24))
    font = _font(size)
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
