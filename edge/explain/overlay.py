"""Heatmap overlays as PNG: the radiograph in grey, the heatmap in colour where it is strong,
and a caption with the class, its probability and the method."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.core.preprocess import to_grey

from .png import encode_png


@lru_cache(maxsize=4)
def _lut(name: str = "jet") -> np.ndarray:
    from matplotlib import colormaps  # colour tables only; no pyplot, no backend

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.float32)


@lru_cache(maxsize=4)
def _blend_lut(alpha: float, name: str = "jet") -> np.ndarray:
    """(heat level << 8 | grey level) -> RGBA packed in a uint32: the whole blend becomes one
    table lookup of one machine word per pixel (4 ms -> 0.5 ms against a 2-D RGB fancy index)."""
    heat = np.arange(256, dtype=np.float32)[:, None, None] / 255.0
    grey = np.arange(256, dtype=np.float32)[None, :, None]
    colour = _lut(name)[:, None, :]
    rgb = np.clip(grey + (alpha * heat) * (colour - grey) + 0.5, 0, 255).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((256, 256, 1), 255, np.uint8)], axis=2)
    return rgba.reshape(65536, 4).view(np.uint32).ravel()


def _grey_u8(pixels: np.ndarray) -> np.ndarray:
    a = np.asarray(pixels)
    if a.dtype == np.uint8 and a.ndim == 2:
        return a
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (3, 4):  # BT.601, as edge.core.preprocess
        return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY if a.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
    return np.clip(to_grey(a) + 0.5, 0, 255).astype(np.uint8)


def overlay_rgb(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.55, max_side: int | None = None) -> np.ndarray:
    """H x W x 3 uint8: grey image blended with the colour-mapped heatmap (weighted by the heat
    itself, so cold regions keep the plain radiograph). Display only, on every server request:
    resizing here is OpenCV's (model inputs never come through here; they use edge.core.preprocess)."""
    grey = _grey_u8(pixels)
    h, w = grey.shape
    if max_side and max(h, w) > max_side:  # overlays are for eyes: no need for 3000 px
        s = max_side / max(h, w)
        h, w = max(1, round(h * s)), max(1, round(w * s))
        grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != (h, w):
        heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
    heat_u8 = cv2.convertScaleAbs(np.clip(heat, 0.0, 1.0), alpha=255.0)
    index = (heat_u8.astype(np.uint16) << 8) | grey
    rgba = _blend_lut(float(alpha))[index].view(np.uint8).reshape(h, w, 4)
    return rgba[:, :, :3]


def caption(label: str, probability: float, method_title: str, target_label: str | None = None) -> str:
    text = f"{label} {probability:.2f}"
    if target_label and target_label != label:
        return f"{text} | {method_title} for {target_label}"
    return f"{text} | {method_title}"


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # parsing the font costs milliseconds: once per size


@lru_cache(maxsize=2048)
def _caption_strip(text: str, size: int, max_w: int, max_h: int) -> np.ndarray:
    """The caption as a greyscale strip: white anti-aliased text on black is the glyph mask itself.
    Captions repeat (label, probability to 2 decimals, method), and rendering one costs about 1.5 ms
    of FreeType layout: a server sees each text once. Read-only (shared between threads)."""
    font = _font(size)
    _, _, right, bottom = font.getbbox(text)  # relative to the text origin, as ImageDraw.textbbox
    # margins as ImageDraw.rectangle drew them: text at (6, 4), box to (right + 6, bottom + 4) inclusive
    strip = Image.new("L", (min(max_w, int(right) + 13), min(max_h, int(bottom) + 9)), 0)
    ImageDraw.Draw(strip).text((6, 4), text, fill=255, font=font)
    out = np.asarray(strip).copy()
    out.flags.writeable = False
    return out


def draw_caption(rgb: np.ndarray, text: str) -> np.ndarray:
    """White text on a black strip at the top left of ``rgb`` (H x W x 3 uint8), written in place.
    Only the strip goes through Pillow, not the whole overlay (a round trip through a Pillow image
    cost more than the text)."""
    h, w = rgb.shape[:2]
    strip = _caption_strip(text, max(11, min(28, w // 24)), w, h)
    rgb[: strip.shape[0], : strip.shape[1]] = strip[:, :, None]
    return rgb


def overlay_png(pixels: np.ndarray, heat: np.ndarray, text: str, max_side: int | None = None) -> bytes:
    """The overlay as PNG bytes (in memory: the server never writes images to disk)."""
    return encode_png(draw_caption(overlay_rgb(pixels, heat, max_side=max_side), text))
