"""What `edge explain` does: overlays for files, and the localisation check against boxes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.bundle import Bundle
from edge.core.data import read_metadata
from edge.core.errors import DataError, ImageReadError
from edge.core.fsutil import write_bytes, write_json
from edge.core.imageio import read_image
from edge.core.inference import decide
from edge.core.progress import bar
from edge.core.report import clean, write_report
from edge.core.runtime import EdgeModel

from . import localize
from .explanation import Explanation
from .overlay import caption, overlay_png

Model = Bundle | EdgeModel  # a Keras bundle (CAM methods) or a .tflite (occlusion)

log = logging.getLogger(__name__)


def model_info(model: Model) -> dict[str, Any]:
    """Which model a report describes: a bundle by id and hash, a .tflite by its spec and file."""
    if isinstance(model, EdgeModel):
        return {
            "id": model.spec.model_id,
            "file": str(model.path),
            "sha256": model.sha256,
            "precision": model.precision,
            "arch": model.spec.source.get("arch"),
        }
    return {"id": model.model_id, "sha256": model.sha256, "arch": model.arch}


def _explainer_for(model: Model, layer: str | None) -> Any:
    """The default explainer: CAMs for a bundle, occlusion for a .tflite."""
    if isinstance(model, EdgeModel):
        from .occlusion import OcclusionExplainer

        return OcclusionExplainer(model)
    from .explainer import Explainer  # TensorFlow: only for a Keras bundle

    return Explainer(model, layer=layer)


def _settings(ex: Any) -> dict[str, Any]:
    return ex.settings() if hasattr(ex, "settings") else {}


def overlay_for(bundle: Model, pixels: np.ndarray, e: Explanation, max_side: int | None = None) -> bytes:
    label, _, _ = decide(bundle, e.probabilities)
    text = caption(label, float(e.probabilities[e.labels.index(label)]), e.method_title, e.target_label)
    return overlay_png(pixels, e.heatmap(), text, max_side=max_side)


def _out_name(path: Path, method: str, used: set[str]) -> str:
    base = f"{path.stem}.{method.replace('+', 'p')}"
    name, i = f"{base}.png", 1
    while name in used:  # same file name in two folders
        i += 1
        name = f"{base}-{i}.png"
    used.add(name)
    return name


def _read_all(paths: Sequence[Path], skip_bad: bool):
    """Yield (path, pixels); bad files raise, or with skip_bad are logged and listed."""
    bad: list[tuple[str, str]] = []
    good = []
    for p in paths:
        try:
            good.append((p, read_image(p).pixels))
        except ImageReadError as e:
            if not skip_bad:
                e.hint = (e.hint + "; " if e.hint else "") + "or pass --skip-bad to leave bad files out"
                raise
            bad.append((str(p), e.message))
    return good, bad


def explain_files(
    bundle: Model,
    paths: Sequence[Path],
    out_dir: str | Path,
    method: str = "gradcam",
    layer: str | None = None,
    target: str | None = None,
    skip_bad: bool = False,
    explainer: Any = None,
) -> dict[str, Any]:
    """One overlay PNG per image in out_dir, and explanations.json listing each result.
    ``explainer``: an Explainer (bundle) or OcclusionExplainer (.tflite); default: built here."""
    out = Path(out_dir)
    ex = explainer or _explainer_for(bundle, layer)
    good, bad = _read_all(paths, skip_bad)
    used: set[str] = set()
    items = []
    for p, pixels in bar(good, desc="explain", total=len(good)):
        e = ex.explain(pixels, method, target)
        name = _out_name(p, e.method, used)
        write_bytes(out / name, overlay_for(bundle, pixels, e, max_side=2048))
        grid = e.grid()
        items.append(
            {
                "file": str(p),
                "overlay": name,
                "label": decide(bundle, e.probabilities)[0],
                "probabilities": dict(zip(e.labels, map(float, e.probabilities), strict=True)),
                "target_label": e.target_label,
                "grid_shape": list(grid.shape),
                "grid": np.round(grid, 4),
            }
        )
    summary = {
        "model": model_info(bundle),
        "method": ex_method(method),
        "layer": ex.layer,
        "settings": _settings(ex),
        "images": items,
        "skipped": [{"file": f, "problem": m} for f, m in bad],
    }
    write_json(out / "explanations.json", clean(summary))
    return summary


def ex_method(name: str) -> str:
    from .methods import get_method

    return "occlusion" if name == "occlusion" else get_method(name).name


def localisation_check(
    bundle: Model,
    paths: Sequence[Path],
    boxes_csv: str | Path,
    out_dir: str | Path,
    metadata_csv: str | Path | None = None,
    method: str = "gradcam",
    layer: str | None = None,
    target: str | None = None,
    skip_bad: bool = False,
    overlays: bool = False,
    explainer: Any = None,
) -> dict[str, Any]:
    """Pointing game and energy share against the boxes, overall and per body region, next to the
    centre baseline -> out_dir/report.json + report.md. Images without boxes are left out."""
    boxes = localize.read_boxes(boxes_csv)
    if metadata_csv is None:  # FracAtlas keeps metadata.csv next to boxes.csv
        guess = Path(boxes_csv).with_name("metadata.csv")
        metadata_csv = guess if guess.is_file() else None
    meta = read_metadata(metadata_csv) if metadata_csv else {}
    with_boxes = [p for p in paths if p.name in boxes]
    if not with_boxes:
        raise DataError(
            f"none of the {len(paths)} images has a box in the boxes CSV",
            boxes_csv,
            "pass the fractured images the CSV describes (e.g. --data DIR --split test)",
        )
    ex = explainer or _explainer_for(bundle, layer)
    good, bad = _read_all(with_boxes, skip_bad)
    out = Path(out_dir)
    used: set[str] = set()
    records = []
    for p, pixels in bar(good, desc="localise", total=len(good)):
        e = ex.explain(pixels, method, target)
        heat = e.heatmap()
        r = localize.score_image(heat, boxes[p.name])
        r.update(
            {
                "file": p.name,
                "region": localize.region_of(meta.get(p.name)),
                "n_boxes": len(boxes[p.name]),
                "target_label": e.target_label,
                "target_probability": float(e.probabilities[e.target_index]),
                "ms": float(sum(e.timings_ms.get(k, 0.0) for k in ("preprocess", "inference"))),
            }
        )
        records.append(r)
        if overlays:
            write_bytes(out / "overlays" / _out_name(p, e.method, used), overlay_for(bundle, pixels, e, max_side=1024))
    summary = localize.summarise_by_region(records)
    info = model_info(bundle)
    data = {
        "model": info,
        "method": ex_method(method),
        "layer": ex.layer,
        "settings": _settings(ex),
        "boxes": str(boxes_csv),
        "metadata": str(metadata_csv) if metadata_csv else None,
        "images_without_boxes": len(paths) - len(with_boxes),
        **summary,
        "images": records,
        "skipped": [{"file": f, "problem": m} for f, m in bad],
    }
    title = f"Localisation of {data['method']} on {info.get('file') or info['id']} ({len(records)} images with fracture boxes)"
    write_report(out, data, localize.markdown(summary, title))
    return clean(data)
