"""Augmentation presets for radiographs (albumentations), applied to the uint8 letterboxed canvas.

Choices for radiographs: small rotations and shift-scale (positioning varies, anatomy does
not rotate 90 degrees), horizontal flips (left and right limbs look alike; vertical flips
would make anatomically implausible images), brightness/contrast/gamma and CLAHE (exposure
and processing differ between machines), mild noise/blur (detector noise, motion), and
coarse dropout (robustness to markers and labels burnt into the film).

``multisite`` adds what differs between hospitals rather than between patients (the model is
scored on radiographs from sites it never saw): tone curves and wide gamma (each vendor's
look-up table), sharpening (edge enhancement in CR/DR post-processing), lower resolution and
JPEG re-compression (detector pitch, PACS and web exports). It is the preset of the embedded
default since fracture-edge 0.5; "radiograph" is the single-site preset it grew from.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np

from edge.core.errors import EdgeError

PRESETS = ("none", "light", "radiograph", "strong", "multisite")


def build_preset(name: str, pad_value: int = 0) -> A.Compose | None:
    if name == "none":
        return None
    strength = {"light": 0.5, "radiograph": 1.0, "strong": 1.5, "multisite": 1.0}.get(name)
    if strength is None:
        raise EdgeError(f"unknown augmentation preset '{name}'", hint=f"choose one of {list(PRESETS)} or pass a JSON file")
    s = strength
    transforms = [
        A.Affine(
            rotate=(-10 * s, 10 * s),
            translate_percent=(-0.06 * s, 0.06 * s),
            scale=(1 - 0.1 * s, 1 + 0.1 * s),
            border_mode=cv2.BORDER_CONSTANT,
            fill=pad_value,
            p=0.7,
        ),
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.15 * s, contrast_limit=0.15 * s, p=0.5),
        A.RandomGamma(gamma_limit=(100 - 20 * s, 100 + 20 * s), p=0.3),
    ]
    if name != "light":
        transforms += [
            A.CLAHE(clip_limit=(1.0, 2.0 + s), tile_grid_size=(8, 8), p=0.2),
            A.GaussNoise(std_range=(0.005, 0.03 * s), p=0.2),
            A.GaussianBlur(blur_limit=(3, 3), p=0.1),
            A.CoarseDropout(
                num_holes_range=(1, 4),
                hole_height_range=(0.03, 0.08 * s),
                hole_width_range=(0.03, 0.08 * s),
                fill=pad_value,
                p=0.2,
            ),
        ]
    if name == "multisite":
        # Probabilities kept low so that one image rarely gets every site change at once.
        transforms += [
            A.RandomToneCurve(scale=0.15, p=0.3),
            A.RandomGamma(gamma_limit=(65, 150), p=0.2),
            A.Sharpen(alpha=(0.1, 0.4), lightness=(0.9, 1.1), p=0.2),
            A.Downscale(scale_range=(0.5, 0.9), p=0.15),
            A.ImageCompression(quality_range=(40, 95), p=0.2),
        ]
    return A.Compose(transforms)


def load_augmentation(preset_or_file: str, pad_value: int = 0) -> A.Compose | None:
    """A preset name, or a JSON file written by ``A.to_dict`` (e.g. a tuned copy of a preset)."""
    p = Path(preset_or_file)
    if p.suffix.lower() == ".json":
        try:
            return A.from_dict(json.loads(p.read_text()))
        except FileNotFoundError:
            raise EdgeError("augmentation file not found", p) from None
        except Exception as e:
            raise EdgeError(f"not an albumentations pipeline ({e})", p) from None
    return build_preset(preset_or_file, pad_value)


def describe(aug: A.Compose | None) -> dict[str, Any] | None:
    """Serialisable form stored in the bundle's training configuration."""
    return None if aug is None else A.to_dict(aug)


class Augmenter:
    """Applies a pipeline to batches reproducibly: each batch gets its own seed, so the result
    does not depend on which worker thread ran it."""

    def __init__(self, pipeline: A.Compose | None):
        self.pipeline = pipeline
        self._tl = threading.local()

    def __call__(self, batch: np.ndarray, seed: int) -> np.ndarray:
        if self.pipeline is None:
            return batch
        pipe = self._local()
        pipe.set_random_seed(int(seed) % (2**31))
        return np.stack([pipe(image=img)["image"] for img in batch])

    def with_boxes(self, batch: np.ndarray, boxes: list[np.ndarray], seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Augment images and move their YOLO boxes (k, 4) with them; a box pushed off the canvas
        is dropped (albumentations clips the rest)."""
        if self.pipeline is None:
            return batch, boxes
        pipe = self._local(with_boxes=True)
        pipe.set_random_seed(int(seed) % (2**31))
        out = [pipe(image=img, bboxes=np.asarray(b, np.float64).reshape(-1, 4)) for img, b in zip(batch, boxes, strict=True)]
        return np.stack([o["image"] for o in out]), [np.asarray(o["bboxes"], np.float64).reshape(-1, 4) for o in out]

    def _local(self, with_boxes: bool = False) -> A.Compose:
        # One Compose per thread: albumentations keeps its RNG in the object.
        key = "pipe_boxes" if with_boxes else "pipe"
        if not hasattr(self._tl, key):
            assert self.pipeline is not None
            pipe = A.from_dict(A.to_dict(self.pipeline))
            if with_boxes:
                pipe = A.Compose(list(pipe.transforms), bbox_params=A.BboxParams(format="yolo", clip=True))
            setattr(self._tl, key, pipe)
        return getattr(self._tl, key)
