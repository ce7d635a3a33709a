"""The one preprocessing definition.

A ``PreprocessSpec`` is stored in every model bundle, embedded in every .tflite, and mirrored
by the Android core (android_demo/core), which is checked against vectors this module writes.
Training, calibration, validation and the server all call :func:`preprocess` /
:func:`letterbox_u8` from here, so the phone sees exactly what training saw.

The steps (computed in float64 up to the rounding in step 4, so Kotlin can match bit for bit):
1. grey = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601 luma), or the single channel as is;
2. letterbox: scale s = min(H/h, W/w), new size round-half-up(h*s) x round-half-up(w*s), centred;
3. bilinear resize with half-pixel centres (no antialiasing: the phone cannot cheaply match it);
4. round half up to uint8 onto a canvas filled with ``pad_value``;
5. x = (u8 - mean[c]) / std[c] as float32, grey replicated into ``channels`` channels;
6. (int8/uint8 models only) q = clamp(floor(x/scale + 0.5) + zero_point).
Augmentation, when training, acts on the uint8 canvas of step 4.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

GREY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PreprocessSpec:
    size: tuple[int, int] = (224, 224)  # (height, width) of the model input
    channels: int = 1  # 1 for the custom CNN; 3 (grey replicated) for ImageNet backbones
    pad_value: int = 0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)
    resize: str = "letterbox"
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not be zero")
        if self.resize != "letterbox" or self.interpolation != "bilinear":
            raise ValueError("only letterbox resizing with bilinear interpolation is defined")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size[0], self.size[1], self.channels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = list(self.size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("size", "mean", "std"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    @classmethod
    def for_arch(cls, arch: str, size: int | tuple[int, int], channels: int | None = None) -> PreprocessSpec:
        """The architecture's input contract: its registry entry carries the normalisation and
        the default channel count (ImageNet backbones: grey replicated to 3 channels)."""
        from .architectures import get_arch  # TensorFlow-free; lazy to keep this module import-light

        info = get_arch(arch)
        ch = channels or info.default_channels
        mean, std = info.mean_std(ch)
        h, w = (size, size) if isinstance(size, int) else size  # a list from JSON/CLI unpacks too
        return cls(size=(h, w), channels=ch, mean=mean, std=std)


def to_grey(pixels: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 (alpha ignored) -> HxW float64 grey in 0..255."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        return a.astype(np.float64)
    if a.ndim == 3 and a.shape[2] == 1:
        return a[:, :, 0].astype(np.float64)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        rgb = a[:, :, :3].astype(np.float64)
        return rgb[:, :, 0] * GREY_WEIGHTS[0] + rgb[:, :, 1] * GREY_WEIGHTS[1] + rgb[:, :, 2] * GREY_WEIGHTS[2]
    raise ValueError(f"unsupported image array shape {a.shape}")


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def letterbox_geometry(h: int, w: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, new_h, new_w) of the image inside the model input canvas."""
    H, W = size
    s = min(H / h, W / w)
    nh = min(H, max(1, _round_half_up(h * s)))
    nw = min(W, max(1, _round_half_up(w * s)))
    return (H - nh) // 2, (W - nw) // 2, nh, nw


def _axis_coords(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5
    s = np.clip(s, 0.0, n_in - 1)
    i0 = np.floor(s).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, s - i0


def resize_bilinear(grey: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres, float64 in and out."""
    h, w = grey.shape
    y0, y1, fy = _axis_coords(h, nh)
    x0, x1, fx = _axis_coords(w, nw)
    fx = fx[None, :]
    top = grey[y0][:, x0] * (1 - fx) + grey[y0][:, x1] * fx
    bot = grey[y1][:, x0] * (1 - fx) + grey[y1][:, x1] * fx
    return top * (1 - fy[:, None]) + bot * fy[:, None]


def letterbox_u8(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Steps 1-4: any decoded image -> HxW uint8 canvas of the model's input size."""
    grey = to_grey(pixels)
    if grey.size == 0:
        raise ValueError("empty image")
    top, left, nh, nw = letterbox_geometry(grey.shape[0], grey.shape[1], spec.size)
    resized = resize_bilinear(grey, nh, nw)
    canvas = np.full(spec.size, spec.pad_value, dtype=np.uint8)
    canvas[top : top + nh, left : left + nw] = np.clip(np.floor(resized + 0.5), 0, 255).astype(np.uint8)
    return canvas


def normalize(u8: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Step 5: HxW (or NxHxW) uint8 canvas -> ...xHxWxC float32 model input."""
    x = u8.astype(np.float32)[..., None]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return ((x - mean) / std).astype(np.float32)


def preprocess(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Steps 1-5 for one image: HxWxC float32."""
    return normalize(letterbox_u8(pixels, spec), spec)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Step 6: float input -> int8/uint8 with the model's own input quantisation."""
    info = np.iinfo(dtype)
    q = np.floor(x.astype(np.float64) / scale + 0.5) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float64) - zero_point) * scale).astype(np.float32)
