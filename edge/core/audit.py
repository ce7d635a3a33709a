"""`edge data check`: the audit to run before training.

Counts per class and split; unreadable files (corrupt, truncated, no pixel data); exact
duplicates (same bytes) and near duplicates (32x32 thumbnails whose Pearson correlation is
at least 0.985: on FracAtlas, re-encoded copies score above 0.99 while different patients'
views of the same region stay below 0.98; a 64-bit difference hash cannot separate them),
and which of them cross splits (leakage: the same radiograph in train and test inflates
every metric); image size and mode statistics.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .data import Dataset, discover
from .errors import ImageReadError
from .imageio import read_image
from .preprocess import to_grey
from .report import table


@dataclass
class _FileInfo:
    sha256: str
    thumb: np.ndarray | None
    width: int = 0
    height: int = 0
    kind: str = ""
    mode: str = ""
    problem: str | None = None


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """32x32 box-filtered thumbnail, zero mean and unit norm (dot product = correlation)."""
    im = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).resize((32, 32), Image.Resampling.BOX)
    a = np.asarray(im, dtype=np.float32).ravel()
    a -= a.mean()
    n = float(np.linalg.norm(a))
    return a / n if n > 0 else a


def _inspect(path: Path) -> _FileInfo:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        d = read_image(path)
    except ImageReadError as e:
        return _FileInfo(digest, None, problem=e.message)
    grey = to_grey(d.pixels)
    return _FileInfo(digest, thumbnail(grey), grey.shape[1], grey.shape[0], d.kind, d.mode)


def _near_pairs(thumbs: np.ndarray, min_corr: float) -> list[tuple[int, int, float]]:
    out = []
    for start in range(0, len(thumbs), 512):  # blocks keep memory small on big datasets
        block = thumbs[start : start + 512] @ thumbs.T
        for r, c in zip(*np.nonzero(block >= min_corr), strict=True):
            i = start + int(r)
            if int(c) > i:
                out.append((i, int(c), float(block[r, c])))
    return out


def audit(root: str | Path, near_corr: float = 0.985, progress: Callable[[Iterable], Iterable] | None = None) -> dict[str, Any]:
    ds: Dataset = discover(root)
    paths = [s.path for s in ds.samples]
    with ThreadPoolExecutor(max_workers=4) as pool:
        it = pool.map(_inspect, paths)
        infos = list(progress(it) if progress else it)

    def rel(i: int) -> str:
        return str(paths[i].relative_to(ds.root)) if paths[i].is_relative_to(ds.root) else str(paths[i])

    bad = [{"path": rel(i), "problem": f.problem} for i, f in enumerate(infos) if f.problem]
    by_sha = defaultdict(list)
    for i, f in enumerate(infos):
        by_sha[f.sha256].append(i)
    exact = [g for g in by_sha.values() if len(g) > 1]
    ok = [i for i, f in enumerate(infos) if f.thumb is not None]
    exact_pairs = {(g[a], g[b]) for g in exact for a in range(len(g)) for b in range(a + 1, len(g))}
    thumbs = np.stack([infos[i].thumb for i in ok]) if ok else np.zeros((0, 1024), np.float32)
    near = [(ok[a], ok[b], c) for a, b, c in _near_pairs(thumbs, near_corr) if (ok[a], ok[b]) not in exact_pairs]

    def pair_row(i: int, j: int, kind: str, corr: float = 1.0) -> dict[str, Any]:
        si, sj = ds.samples[i], ds.samples[j]
        return {
            "a": rel(i),
            "b": rel(j),
            "kind": kind,
            "correlation": round(corr, 5),
            "cross_split": si.split != sj.split,
            "label_conflict": si.label != sj.label,
        }

    dups = [pair_row(i, j, "exact") for i, j in sorted(exact_pairs)] + [pair_row(i, j, "near", d) for i, j, d in near]
    leakage = [d for d in dups if d["cross_split"]]
    good = [f for f in infos if not f.problem]
    ws, hs = np.array([f.width for f in good]), np.array([f.height for f in good])
    stats = {
        "width": {"min": int(ws.min()), "median": float(np.median(ws)), "max": int(ws.max())} if len(good) else None,
        "height": {"min": int(hs.min()), "median": float(np.median(hs)), "max": int(hs.max())} if len(good) else None,
        "kinds": dict(Counter(f.kind for f in good)),
        "modes": dict(Counter(f.mode for f in good)),
    }
    return {
        "root": str(ds.root),
        "n": len(ds),
        "classes": ds.classes,
        "counts": ds.counts(),
        "unreadable": bad,
        "duplicates": dups,
        "leakage": leakage,
        "label_conflicts": [d for d in dups if d["label_conflict"]],
        "images": stats,
        "near_duplicate_min_correlation": near_corr,
    }


def markdown(rep: dict[str, Any], max_rows: int = 20) -> str:
    splits = sorted(rep["counts"])
    lines = [f"# Data check: {rep['root']}", "", f"{rep['n']} images, classes: {', '.join(rep['classes'])}", ""]
    lines.append(table(["class", *splits], [[c, *(rep["counts"][s].get(c, 0) for s in splits)] for c in rep["classes"]]))
    im = rep["images"]
    if im["width"]:
        lines += [
            "",
            f"Image size: width {im['width']['min']}..{im['width']['max']} (median {im['width']['median']:.0f}), "
            f"height {im['height']['min']}..{im['height']['max']} (median {im['height']['median']:.0f}); "
            f"formats {im['kinds']}; modes {im['modes']}",
        ]
    lines += ["", f"## Unreadable files: {len(rep['unreadable'])}"]
    if rep["unreadable"]:
        lines.append(table(["file", "problem"], [[b["path"], b["problem"]] for b in rep["unreadable"][:max_rows]]))
        if len(rep["unreadable"]) > max_rows:
            lines.append(f"... and {len(rep['unreadable']) - max_rows} more (see --json)")
    lines += [
        "",
        f"## Duplicates: {len(rep['duplicates'])} pairs, {len(rep['leakage'])} across splits (leakage), "
        f"{len(rep['label_conflicts'])} with conflicting labels",
    ]
    if rep["duplicates"]:
        rows = sorted(rep["duplicates"], key=lambda d: (not d["cross_split"], d["kind"]))[:max_rows]
        lines.append(
            table(
                ["a", "b", "kind", "correlation", "cross split", "label conflict"],
                [[d["a"], d["b"], d["kind"], d["correlation"], d["cross_split"], d["label_conflict"]] for d in rows],
            )
        )
    return "\n".join(lines) + "\n"
