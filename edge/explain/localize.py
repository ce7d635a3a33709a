"""Does the heatmap point at the fracture? Scored against radiologists' boxes.

- pointing game (Zhang et al. 2016; used for chest X-ray saliency by Saporta et al. 2022):
  a hit when the heatmap's maximum lies inside a fracture box;
- energy share: the fraction of the heatmap's total mass inside the boxes;
- centre baseline: a map peaking at the image centre (a centred Gaussian). Its maximum is the
  centre point, so its hit rate is the centre-point baseline; a saliency method that does not
  beat it is not localising anything.
Boxes are YOLO-normalised (x_center, y_center, width, height in 0..1 of the image).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from edge.core.boxes import Box, read_boxes  # noqa: F401  (read_boxes: re-exported for edge.explain users)
from edge.core.report import fmt, table

REGIONS = ("hand", "leg", "hip", "shoulder")


def box_mask(boxes: Iterable[Box], hw: tuple[int, int]) -> np.ndarray:
    """H x W bool: pixels whose centre lies inside any box."""
    h, w = hw
    mask = np.zeros((h, w), bool)
    ys, xs = np.arange(h) + 0.5, np.arange(w) + 0.5
    for xc, yc, bw, bh in boxes:
        rows = (ys >= (yc - bh / 2) * h) & (ys <= (yc + bh / 2) * h)
        cols = (xs >= (xc - bw / 2) * w) & (xs <= (xc + bw / 2) * w)
        mask |= rows[:, None] & cols[None, :]
    return mask


def pointing_hit(heat: np.ndarray, mask: np.ndarray) -> bool:
    """Is the heatmap's maximum (the first, in row-major order) inside the mask? A flat map
    points nowhere and never hits (otherwise an empty explanation would score)."""
    heat = np.asarray(heat, dtype=np.float64)
    if not heat.size or heat.max() <= heat.min():
        return False
    return bool(mask.flat[int(np.argmax(heat))])


def energy_inside(heat: np.ndarray, mask: np.ndarray) -> float:
    """Share of the (non-negative) heatmap mass inside the mask; NaN for an empty heatmap."""
    heat = np.clip(np.asarray(heat, dtype=np.float64), 0.0, None)
    total = heat.sum()
    return float(heat[mask].sum() / total) if total > 0 else math.nan


def centre_map(hw: tuple[int, int], sigma_frac: float = 0.25) -> np.ndarray:
    """The baseline heatmap: a Gaussian centred on the image, sigma a quarter of each side."""
    h, w = hw
    y = (np.arange(h) + 0.5 - h / 2) / (sigma_frac * h)
    x = (np.arange(w) + 0.5 - w / 2) / (sigma_frac * w)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))


def score_image(heat: np.ndarray, boxes: list[Box]) -> dict[str, Any]:
    """Both scores for one heatmap (original image size) and for the centre baseline."""
    hw = heat.shape
    mask = box_mask(boxes, hw)
    base = centre_map(hw)
    return {
        "hit": pointing_hit(heat, mask),
        "energy": energy_inside(heat, mask),
        "baseline_hit": pointing_hit(base, mask),
        "baseline_energy": energy_inside(base, mask),
        "box_area": float(mask.mean()),
        "flat": bool(heat.max() <= heat.min()),
    }


def region_of(meta_row: dict[str, str] | None) -> str:
    """FracAtlas body-region flags -> one name ('mixed' when flagged so or several are set)."""
    if not meta_row:
        return "unknown"
    flags = [r for r in REGIONS if str(meta_row.get(r, "0")).strip() in ("1", "1.0", "True", "true")]
    if str(meta_row.get("mixed", "0")).strip() in ("1", "1.0", "True", "true") or len(flags) > 1:
        return "mixed"
    return flags[0] if flags else "unknown"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson interval of a proportion (sensible at small n and near 0 or 1)."""
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    r = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - r), min(1.0, c + r))


def _nanmean(v: list[float]) -> float:
    v = [x for x in v if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Hit rates and mean energy shares for a group of scored images."""
    n = len(records)
    hits = sum(r["hit"] for r in records)
    base = sum(r["baseline_hit"] for r in records)
    return {
        "n": n,
        "hit_rate": hits / n if n else math.nan,
        "hit_rate_ci95": wilson(hits, n),
        "baseline_hit_rate": base / n if n else math.nan,
        "baseline_hit_rate_ci95": wilson(base, n),
        "energy_inside": _nanmean([r["energy"] for r in records]),
        "baseline_energy_inside": _nanmean([r["baseline_energy"] for r in records]),
        "box_area_share": _nanmean([r["box_area"] for r in records]),
        "flat_heatmaps": sum(bool(r.get("flat")) for r in records),
    }


def summarise_by_region(records: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r.get("region", "unknown")].append(r)
    order = [g for g in (*REGIONS, "mixed", "unknown") if g in groups]
    return {"overall": summarise(records), "per_region": {g: summarise(groups[g]) for g in order}}


def markdown(summary: dict[str, Any], title: str) -> str:
    rows = [["all", summary["overall"]]] + [[k, v] for k, v in summary["per_region"].items()]

    def ci(v):
        return f"[{v[0]:.2f}, {v[1]:.2f}]" if v else "–"

    body = table(
        ["group", "n", "hit rate", "95% CI", "centre hit rate", "energy in boxes", "centre energy", "box area"],
        [
            [
                g,
                s["n"],
                s["hit_rate"],
                ci(s["hit_rate_ci95"]),
                s["baseline_hit_rate"],
                s["energy_inside"],
                s["baseline_energy_inside"],
                s["box_area_share"],
            ]
            for g, s in rows
        ],
    )
    o = summary["overall"]
    return (
        f"# {title}\n\n{body}\n\n"
        f"Pointing game: a hit when the heatmap's maximum lies inside a radiologist's box. "
        f"Centre baseline: a centred Gaussian map (its maximum is the image centre). "
        f"Energy: the share of heatmap mass inside the boxes; a uniform map would score the box area.\n\n"
        f"Overall hit rate {fmt(o['hit_rate'])} vs centre baseline {fmt(o['baseline_hit_rate'])} on {o['n']} images.\n"
    )
