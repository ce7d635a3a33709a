"""Occlusion sensitivity (Zeiler & Fergus 2014) on the .tflite the phone runs.

Grad-CAM needs the Keras graph and its gradients, so it explains the float model; the phone runs
the int8 file. Occlusion needs only forward passes: a patch slides over the letterboxed canvas,
each position is covered with a neutral fill, and the drop in the target probability
(P(positive) for a binary model) is that position's evidence. It runs in LiteRT through
``EdgeModel`` (the spec embedded in the .tflite says how to prepare the input), so it explains
int8, fp16 and float32 files alike and compares them on equal terms.

- Only positions that overlap the image content are run, and the fill covers only content
  pixels: the letterbox padding is not part of the radiograph, and filling it would paint an
  artificial edge the model never saw.
- Fills: ``blur`` (default) replaces the patch with a strongly blurred copy of itself, which keeps
  the local brightness (bone stays bone) and removes the fine structure a fracture line is made
  of; ``mean`` is a flat patch at the content's mean grey; ``pad`` the canvas padding value.
- The map is the mean drop over the patches covering each pixel, averaged into cells of one
  stride (14 x 14 cells at the default geometry), so it has the same form as a CAM: an h x w
  grid over the canvas that ``edge.explain.mapping`` maps back to the original image.
  Negative drops (covering a region made the fracture more likely) are cut at zero for the
  heatmap, as Grad-CAM's ReLU does; the signed per-position drops are kept for comparisons.

Imports neither TensorFlow nor tf-keras-vis: LiteRT alone runs the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import EdgeError
from edge.core.preprocess import letterbox_geometry, letterbox_u8
from edge.core.runtime import EdgeModel

from .explanation import Explanation
from .mapping import minmax

FILLS = ("blur", "mean", "pad")
TITLE = "Occlusion"


def default_geometry(size: tuple[int, int]) -> tuple[int, int]:
    """(patch, stride) for a canvas: a patch of about a seventh of the side (32 px at 224,
    64 px at 448), so that it can hide a fracture line and its surroundings at either
    resolution, and a half-patch stride: 13 x 13 positions on a square canvas at any size."""
    patch = max(2, int(round(min(size) / 7)))
    return patch, max(1, patch // 2)


def starts(n: int, patch: int, stride: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Patch start offsets along one axis of length n, every stride, the last one flush with the
    end, keeping those whose patch overlaps [lo, hi) (the image content)."""
    hi = n if hi is None else hi
    s = list(range(0, max(1, n - patch + 1), stride))
    if s[-1] != max(0, n - patch):
        s.append(max(0, n - patch))
    a = np.asarray(s, dtype=np.int64)
    return a[(a < hi) & (a + patch > lo)]


def _axis_masks(offsets: np.ndarray, n: int, patch: int, lo: int, hi: int) -> np.ndarray:
    """len(offsets) x n bool: pixels under each patch, content only."""
    px = np.arange(n)
    inside = (px >= lo) & (px < hi)
    return (px[None, :] >= offsets[:, None]) & (px[None, :] < offsets[:, None] + patch) & inside[None, :]


def fill_canvas(canvas: np.ndarray, content: np.ndarray, fill: str, patch: int, pad_value: int) -> np.ndarray:
    """What an occluded pixel becomes (H x W uint8), for every pixel at once."""
    if fill == "blur":
        # sigma of half a patch: nothing of a fracture line survives, the bone's brightness does
        return cv2.GaussianBlur(canvas, (0, 0), sigmaX=patch / 2, borderType=cv2.BORDER_REFLECT)
    if fill == "mean":
        mean = float(canvas[content].mean()) if content.any() else float(pad_value)
        return np.full_like(canvas, int(np.floor(mean + 0.5)))
    if fill == "pad":
        return np.full_like(canvas, pad_value)
    raise EdgeError(f"unknown occlusion fill '{fill}'", hint=f"choose one of {', '.join(FILLS)}")


@dataclass
class OcclusionExplanation(Explanation):
    """An Explanation with the measurements behind it: ``positions`` (n x 2 top, left on the
    canvas) and the signed probability ``drops`` there (same positions for any model with the
    same input size and geometry, so two models' drops compare element by element)."""

    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    drops: np.ndarray = field(default_factory=lambda: np.zeros(0))
    raw_cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


class OcclusionExplainer:
    """Occlusion maps for one .tflite. Build once, call per image (not thread-safe: one LiteRT
    interpreter)."""

    method = "occlusion"
    layer = None  # no feature layer: the model is a black box here

    def __init__(
        self,
        model: EdgeModel | str | Path,
        patch: int | None = None,
        stride: int | None = None,
        fill: str = "blur",
        batch: int = 16,
    ):
        self.model = model if isinstance(model, EdgeModel) else EdgeModel.load(model)
        self.spec = self.model.preprocess_spec
        self.labels = self.model.labels
        self.task = self.model.task
        dp, ds = default_geometry(self.spec.size)
        self.patch = int(patch or dp)
        self.stride = int(stride or (max(1, self.patch // 2) if patch else ds))
        if not 1 <= self.patch <= min(self.spec.size):
            h, w = self.spec.size
            raise EdgeError(f"occlusion patch {self.patch} px does not fit the {h}x{w} input", self.model.path)
        if not 1 <= self.stride <= self.patch:
            raise EdgeError(f"occlusion stride must be 1..patch ({self.patch}), not {self.stride}", self.model.path)
        if fill not in FILLS:
            raise EdgeError(f"unknown occlusion fill '{fill}'", hint=f"choose one of {', '.join(FILLS)}")
        self.fill = fill
        self.batch = max(1, int(batch))

    # --- target ---------------------------------------------------------------------------
    def target_index(self, target: str | int | None, probs: np.ndarray) -> int:
        """Binary: the positive class unless asked otherwise; multi-class: the predicted one."""
        if target is None or target == "":
            if self.task == "binary" and self.model.positive_label in self.labels:
                return self.labels.index(self.model.positive_label)
            return int(np.argmax(probs))
        if isinstance(target, int) or (isinstance(target, str) and target.isdigit() and target not in self.labels):
            i = int(target)
            if not 0 <= i < len(self.labels):
                raise EdgeError(f"target index {i} out of range for labels {self.labels}", self.model.path)
            return i
        if target not in self.labels:
            raise EdgeError(f"unknown target '{target}'", self.model.path, f"the model's labels are {self.labels}")
        return self.labels.index(target)

    def settings(self) -> dict[str, object]:
        return {"patch": self.patch, "stride": self.stride, "fill": self.fill, "input": list(self.spec.size)}

    # --- the measurement --------------------------------------------------------------------
    def explain_canvas(
        self, canvas: np.ndarray, image_hw: tuple[int, int], target: str | int | None = None
    ) -> OcclusionExplanation:
        """One letterboxed uint8 canvas (of an image of size image_hw) -> its explanation."""
        H, W = self.spec.size
        top, left, nh, nw = letterbox_geometry(image_hw[0], image_hw[1], (H, W))
        content = np.zeros((H, W), bool)
        content[top : top + nh, left : left + nw] = True
        t0 = time.perf_counter()
        ys = starts(H, self.patch, self.stride, top, top + nh)
        xs = starts(W, self.patch, self.stride, left, left + nw)
        rows = _axis_masks(ys, H, self.patch, top, top + nh)  # len(ys) x H
        cols = _axis_masks(xs, W, self.patch, left, left + nw)  # len(xs) x W
        # every (row, col) pair of patch offsets, row-major: n = len(ys) * len(xs)
        r = np.repeat(rows, len(xs), axis=0)
        c = np.tile(cols, (len(ys), 1))
        filled = fill_canvas(canvas, content, self.fill, self.patch, self.spec.pad_value)
        masks = r[:, :, None] & c[:, None, :]
        batch = np.concatenate([canvas[None], np.where(masks, filled[None], canvas[None])])
        probs = self.model.predict_canvases(batch, batch=self.batch)
        t1 = time.perf_counter()
        idx = self.target_index(target, probs[0])
        drops = probs[0, idx] - probs[1:, idx]
        # mean drop of the patches covering each pixel: sum_k d_k r_k c_k^T over count (separable masks)
        total = (r * drops[:, None]).T @ c
        count = r.T.astype(np.float64) @ c
        pixel = np.divide(total, count, out=np.zeros((H, W)), where=count > 0)
        cells_hw = (max(1, round(H / self.stride)), max(1, round(W / self.stride)))
        cells = cv2.resize(pixel, (cells_hw[1], cells_hw[0]), interpolation=cv2.INTER_AREA)
        positions = np.stack([np.repeat(ys, len(xs)), np.tile(xs, len(ys))], axis=1)
        return OcclusionExplanation(
            method="occlusion",
            method_title=TITLE,
            target_index=idx,
            target_label=self.labels[idx],
            labels=self.labels,
            probabilities=probs[0],
            cam=minmax(np.maximum(cells, 0.0)),
            image_hw=(int(image_hw[0]), int(image_hw[1])),
            spec=self.spec,
            timings_ms={"inference": (t1 - t0) * 1e3, "positions": float(len(drops))},
            positions=positions,
            drops=drops.astype(np.float64),
            raw_cells=cells,
        )

    def explain(self, pixels: np.ndarray, method: str = "occlusion", target: str | int | None = None) -> OcclusionExplanation:
        """One decoded image (as from edge.core.imageio) -> its explanation (same call as Explainer's)."""
        if method != "occlusion":
            raise EdgeError(
                f"a .tflite is explained by occlusion, not '{method}'",
                self.model.path,
                "Grad-CAM and its kin need the Keras bundle: pass the bundle instead of --edge",
            )
        t0 = time.perf_counter()
        canvas = letterbox_u8(pixels, self.spec)
        t1 = time.perf_counter()
        e = self.explain_canvas(canvas, (int(pixels.shape[0]), int(pixels.shape[1])), target)
        e.timings_ms["preprocess"] = (t1 - t0) * 1e3
        return e
