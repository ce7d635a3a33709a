"""Radiologists' fracture boxes: reading the CSV and placing boxes on the model's canvas.

Boxes are YOLO-normalised (x_center, y_center, width, height in 0..1 of the decoded image, as
FracAtlas' ``boxes.csv`` gives them). Explanation scoring (edge.explain.localize) and box-guided
training (train.box_loss) both read them here, so both put a box in the same place.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from .errors import DataError
from .preprocess import letterbox_geometry

Box = tuple[float, float, float, float]  # x_center, y_center, width, height (0..1)


def read_boxes(csv_path: str | Path) -> dict[str, list[Box]]:
    """boxes.csv -> {image file name: [box, ...]}."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError("boxes CSV not found", csv_path)
    out: dict[str, list[Box]] = defaultdict(list)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        need = {"x_center", "y_center", "width", "height"}
        cols = set(reader.fieldnames or [])
        if not need <= cols:
            raise DataError(f"boxes CSV needs columns image_id,{','.join(sorted(need))}", csv_path)
        key = next((k for k in ("image_id", "path", "name", "file") if k in cols), (reader.fieldnames or [""])[0])
        for i, row in enumerate(reader, start=2):
            try:
                box = tuple(float(row[k]) for k in ("x_center", "y_center", "width", "height"))
            except ValueError:
                raise DataError(f"line {i}: box values must be numbers", csv_path) from None
            if not all(0.0 <= v <= 1.0 for v in box):
                raise DataError(f"line {i}: box values must be YOLO-normalised (0..1)", csv_path)
            out[Path(row[key]).name].append(box)  # type: ignore[arg-type]
    return dict(out)


def to_canvas(boxes: list[Box], image_hw: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Boxes of an h x w image -> (k, 4) YOLO boxes on its letterboxed canvas (edge.core.preprocess),
    clipped to the canvas."""
    H, W = size
    top, left, nh, nw = letterbox_geometry(image_hw[0], image_hw[1], size)
    out = []
    for xc, yc, bw, bh in boxes:
        x0, x1 = (left + (xc - bw / 2) * nw) / W, (left + (xc + bw / 2) * nw) / W
        y0, y1 = (top + (yc - bh / 2) * nh) / H, (top + (yc + bh / 2) * nh) / H
        x0, x1, y0, y1 = max(0.0, x0), min(1.0, x1), max(0.0, y0), min(1.0, y1)
        if x1 > x0 and y1 > y0:
            out.append(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))
    return np.asarray(out, np.float64).reshape(-1, 4)


def grid_mask(boxes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(k, 4) YOLO boxes -> gh x gw float32 mask of the feature-map cells a box overlaps.

    A cell counts when any part of a box falls in it: fracture boxes are often smaller than one
    cell of a 1/32 feature map, and a share-of-cell target would be unreachable."""
    gh, gw = grid
    mask = np.zeros((gh, gw), np.float32)
    for xc, yc, bw, bh in np.asarray(boxes, np.float64).reshape(-1, 4):
        r0, r1 = (yc - bh / 2) * gh, (yc + bh / 2) * gh
        c0, c1 = (xc - bw / 2) * gw, (xc + bw / 2) * gw
        rows = (np.arange(gh) < r1) & (np.arange(gh) + 1 > r0)
        cols = (np.arange(gw) < c1) & (np.arange(gw) + 1 > c0)
        mask[rows[:, None] & cols[None, :]] = 1.0
    return mask
