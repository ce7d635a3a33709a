"""Does the int8 file look where the float one looks? Occlusion maps of two .tflite files of the
same model (typically int8 vs float32) on the same images.

- Agreement: Spearman rank correlation (scipy.stats.spearmanr) of the two models' signed
  probability drops over the same occlusion positions, per image, summarised by median and
  minimum. Ranks, not values: int8 and float32 differ in scale (int8 outputs move in steps of
  the output quantisation), and what a clinician reads off a heatmap is where it is strongest.
  A map with no variation at all (every drop equal) has no ranking; its correlation is
  reported as undefined and counted, not averaged in.
- With boxes: each model's pointing-game hit rate and energy share in the boxes, next to the
  centre baseline (edge.explain.localize), as `edge explain --boxes` reports for Grad-CAM.
- Time per image for each model (both run here, on this CPU, one after the other).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from edge.core.data import read_metadata
from edge.core.errors import DataError, EdgeError
from edge.core.progress import bar
from edge.core.report import fmt, table, write_report

from . import localize
from .occlusion import OcclusionExplainer, OcclusionExplanation
from .run import _read_all, model_info


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two equally long vectors; NaN when either is constant (no ranking)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps of different sizes: {a.shape} vs {b.shape}")
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(a, b).statistic)


def check_comparable(a: OcclusionExplainer, b: OcclusionExplainer) -> None:
    """Same input, labels and occlusion geometry, or position k would not be the same patch."""
    if a.spec.size != b.spec.size:
        raise EdgeError(
            f"the two models take different inputs ({a.spec.size[0]}x{a.spec.size[1]} vs {b.spec.size[0]}x{b.spec.size[1]})",
            b.model.path,
            "compare two conversions of the same bundle",
        )
    if a.labels != b.labels or a.task != b.task:
        raise EdgeError(f"the two models have different labels ({a.labels} vs {b.labels})", b.model.path)
    if a.settings() != b.settings():
        raise EdgeError("the two explainers use different occlusion settings", b.model.path)


def _stat(v: list[float]) -> dict[str, Any]:
    ok = [x for x in v if not math.isnan(x)]
    return {
        "n": len(ok),
        "undefined": len(v) - len(ok),
        "median": float(np.median(ok)) if ok else math.nan,
        "min": float(np.min(ok)) if ok else math.nan,
        "q25": float(np.percentile(ok, 25)) if ok else math.nan,
        "mean": float(np.mean(ok)) if ok else math.nan,
    }


def _ms(e: OcclusionExplanation) -> float:
    return float(e.timings_ms.get("preprocess", 0.0) + e.timings_ms.get("inference", 0.0))


def compare_occlusion(
    a: OcclusionExplainer,
    b: OcclusionExplainer,
    paths: Sequence[Path],
    out_dir: str | Path,
    boxes_csv: str | Path | None = None,
    metadata_csv: str | Path | None = None,
    target: str | None = None,
    skip_bad: bool = False,
) -> dict[str, Any]:
    """Occlusion on both models for every image -> out_dir/report.json + report.md. With
    boxes_csv only the images that have boxes are used, and both models' hit rates are scored."""
    check_comparable(a, b)
    boxes = localize.read_boxes(boxes_csv) if boxes_csv else None
    meta: dict[str, Any] = {}
    if boxes is not None:
        if metadata_csv is None:  # FracAtlas keeps metadata.csv next to boxes.csv
            guess = Path(str(boxes_csv)).with_name("metadata.csv")
            metadata_csv = guess if guess.is_file() else None
        meta = read_metadata(metadata_csv) if metadata_csv else {}
        used_paths = [p for p in paths if p.name in boxes]
        if not used_paths:
            raise DataError(
                f"none of the {len(paths)} images has a box in the boxes CSV",
                boxes_csv,
                "pass the fractured images the CSV describes (e.g. --data DIR --split test)",
            )
    else:
        used_paths = list(paths)
    good, bad = _read_all(used_paths, skip_bad)
    if not good:
        raise DataError("no readable image to explain", used_paths[0] if used_paths else None)
    records: list[dict[str, Any]] = []
    scored: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    for p, pixels in bar(good, desc="occlusion x2", total=len(good)):
        ea = a.explain(pixels, "occlusion", target)
        eb = b.explain(pixels, "occlusion", target)
        rec: dict[str, Any] = {
            "file": p.name,
            "spearman": rank_correlation(ea.drops, eb.drops),
            "p_a": float(ea.probabilities[ea.target_index]),
            "p_b": float(eb.probabilities[eb.target_index]),
            "max_drop_a": float(ea.drops.max()),
            "max_drop_b": float(eb.drops.max()),
            "same_peak": bool(np.argmax(ea.drops) == np.argmax(eb.drops)),
            "positions": len(ea.drops),
            "ms_a": _ms(ea),
            "ms_b": _ms(eb),
        }
        if boxes is not None:
            region = localize.region_of(meta.get(p.name))
            for key, e in (("a", ea), ("b", eb)):
                s = localize.score_image(e.heatmap(), boxes[p.name])
                s["region"] = region
                scored[key].append(s)
                rec[f"hit_{key}"] = s["hit"]
                rec[f"energy_{key}"] = s["energy"]
            rec["baseline_hit"] = scored["a"][-1]["baseline_hit"]
            rec["region"] = region
        records.append(rec)
    data: dict[str, Any] = {
        "a": {**model_info(a.model), "ms_per_image_median": float(np.median([r["ms_a"] for r in records]))},
        "b": {**model_info(b.model), "ms_per_image_median": float(np.median([r["ms_b"] for r in records]))},
        "settings": a.settings(),
        "positions_per_image_median": float(np.median([r["positions"] for r in records])),
        "target": target,
        "spearman": _stat([r["spearman"] for r in records]),
        "same_peak_rate": float(np.mean([r["same_peak"] for r in records])),
        "images": records,
        "skipped": [{"file": f, "problem": m} for f, m in bad],
    }
    if boxes is not None:
        data["boxes"] = str(boxes_csv)
        data["localisation_a"] = localize.summarise_by_region(scored["a"])
        data["localisation_b"] = localize.summarise_by_region(scored["b"])
    write_report(out_dir, data, markdown(data))
    return data


def markdown(d: dict[str, Any]) -> str:
    a, b, s = d["a"], d["b"], d["spearman"]
    name_a, name_b = Path(a["file"]).name, Path(b["file"]).name
    lines = [
        f"# Occlusion: {name_a} ({a['precision']}) vs {name_b} ({b['precision']})",
        "",
        f"{len(d['images'])} images; patch {d['settings']['patch']} px, stride {d['settings']['stride']} px, "
        f"fill {d['settings']['fill']}, input {d['settings']['input'][0]}x{d['settings']['input'][1]}.",
        "",
        table(
            ["", "median", "min", "25th pct", "mean", "undefined"],
            [["Spearman rho of the drops", s["median"], s["min"], s["q25"], s["mean"], s["undefined"]]],
        ),
        "",
        f"Same strongest position in both maps: {fmt(d['same_peak_rate'])} of the images.",
        "",
    ]
    rows = [[name_a, a["precision"], round(a["ms_per_image_median"])], [name_b, b["precision"], round(b["ms_per_image_median"])]]
    if "localisation_a" in d:
        la, lb = d["localisation_a"]["overall"], d["localisation_b"]["overall"]
        rows[0] += [la["hit_rate"], la["baseline_hit_rate"], la["energy_inside"]]
        rows[1] += [lb["hit_rate"], lb["baseline_hit_rate"], lb["energy_inside"]]
        head = ["model", "precision", "ms per image (median)", "hit rate", "centre hit rate", "energy in boxes"]
    else:
        head = ["model", "precision", "ms per image (median)"]
    lines += [table(head, rows), ""]
    lines.append(
        "Spearman rho: rank correlation of the two models' probability drops over the same occlusion "
        "positions (1 = same ordering). Undefined: a map with no variation. Hit: the heatmap's maximum "
        "lies in a radiologist's box; centre: the same for a centred Gaussian. Times: both models on "
        "this machine, one after the other, per image (all positions)."
    )
    return "\n".join(lines) + "\n"
