"""`edge data check`: the audit to run before training.

Counts per class and split; unreadable files (corrupt, truncated, no pixel data); exact
duplicates (same bytes) and near duplicates (32x32 thumbnails whose Pearson correlation is
at least 0.985: on FracAtlas, re-encoded copies score above 0.99 while different patients'
views of the same region stay below 0.98; a 64-bit difference hash cannot separate them),
and which of them cross splits (leakage: the same radiograph in train and test inflates
every metric); image size and mode statistics.

``source_groups`` goes further for web-collected sets (bone_break_types): pictures whose
names say they come from the same source (one article's figures, a cropped or re-exported copy
under a near-identical name) or whose thumbnails correlate at a looser level are put in one
group, so cross-validation can keep every group inside one fold.
"""

from __future__ import annotations

import difflib
import hashlib
import re
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


def _inspect_all(paths: list[Path], progress: Callable[[Iterable], Iterable] | None) -> list[_FileInfo]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        it = pool.map(_inspect, paths)
        return list(progress(it) if progress else it)


def audit(root: str | Path, near_corr: float = 0.985, progress: Callable[[Iterable], Iterable] | None = None) -> dict[str, Any]:
    ds: Dataset = discover(root)
    paths = [s.path for s in ds.samples]
    infos = _inspect_all(paths, progress)

    def rel(i: int) -> str:
        return str(paths[i].relative_to(ds.root)) if paths[i].is_relative_to(ds.root) else str(paths[i])

    bad = [{"path": rel(i), "problem": f.problem} for i, f in enumerate(infos) if f.problem]
    by_sha = defaultdict(list)
    for i, f in enumerate(infos):
        by_sha[f.sha256].append(i)
    exact = [g for g in by_sha.values() if len(g) > 1]
    ok = [i for i, f in enumerate(infos) if f.thumb is not None]
    exact_pairs = {(g[a], g[b]) for g in exact for a in range(len(g)) for b in range(a + 1, len(g))}
    thumbs = np.stack([t for i in ok if (t := infos[i].thumb) is not None]) if ok else np.zeros((0, 1024), np.float32)
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


_EXPORT_SUFFIX = re.compile(r"_[0-9a-f]{8}$")  # the hash Roboflow appends to every exported file name
# the original extension kept in the name on export, and whatever an export appended after it (.rf<hash>)
_OLD_EXTENSION = re.compile(r"[_.](?:jpe?g|png|gif|webp)(?:[._].*)?$")


def name_stem(file_name: str) -> str:
    """A file name reduced to what names its source: no extensions, no export hash, no 'Inked' (an
    annotated copy made with Windows Ink), lower case."""
    stem = _EXPORT_SUFFIX.sub("", Path(file_name).stem).lower()
    return _OLD_EXTENSION.sub("", stem).removeprefix("inked")


def same_source(a: str, b: str, min_ratio: float = 0.9, min_len: int = 12) -> bool:
    """Two name stems from one source: equal, or long enough and nearly equal (a figure number or a
    few characters cut from the web name). Short names that merely look alike (``images27`` and
    ``images25``, ``hqdefault`` and ``mqdefault``: a browser's or a video site's default) do not match."""
    if a == b:
        return bool(a)
    if min(len(a), len(b)) < min_len:
        return False
    m = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return m.real_quick_ratio() >= min_ratio and m.quick_ratio() >= min_ratio and m.ratio() >= min_ratio


@dataclass
class SourceGroups:
    """Readable images of a data set, each with a group id; duplicates and same-source pairs share one."""

    paths: list[Path]
    labels: list[str]
    group: np.ndarray  # N group ids (the smallest member index)
    pairs: list[dict[str, Any]]  # why images were joined: {"a", "b", "reason": exact|near|name, "label_conflict"}
    unreadable: list[dict[str, str]]

    @property
    def n_groups(self) -> int:
        return len(set(self.group.tolist()))

    def conflicting(self) -> set[int]:
        """Indices of images with a duplicate (exact or near) filed under another label."""
        index = {p: i for i, p in enumerate(self.paths)}
        return {index[Path(p[k])] for p in self.pairs if p["label_conflict"] and p["reason"] != "name" for k in ("a", "b")}


def source_groups(
    root: str | Path,
    near_corr: float = 0.92,
    name_ratio: float = 0.9,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> SourceGroups:
    """Group a data set's readable images by source: exact copies, thumbnails correlated at least
    ``near_corr`` (looser than the audit's leak check: on bone_break_types, cross-class copies of one
    picture re-cropped score 0.93-0.94), and names from one source (``same_source``)."""
    ds = discover(root)
    infos = _inspect_all([s.path for s in ds.samples], progress)
    ok = [i for i, f in enumerate(infos) if f.thumb is not None]
    unreadable = [{"path": str(ds.samples[i].path), "problem": str(f.problem)} for i, f in enumerate(infos) if f.problem]
    paths = [ds.samples[i].path for i in ok]
    labels = [ds.samples[i].label for i in ok]
    parent = list(range(len(ok)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs: list[dict[str, Any]] = []

    def join(i: int, j: int, reason: str) -> None:
        pairs.append({"a": str(paths[i]), "b": str(paths[j]), "reason": reason, "label_conflict": labels[i] != labels[j]})
        a, b = find(i), find(j)
        parent[max(a, b)] = min(a, b)

    sha = [infos[i].sha256 for i in ok]
    thumbs = np.stack([t for i in ok if (t := infos[i].thumb) is not None]) if ok else np.zeros((0, 1024), np.float32)
    for i, j, _ in _near_pairs(thumbs, near_corr):
        join(i, j, "exact" if sha[i] == sha[j] else "near")
    stems = [name_stem(p.name) for p in paths]
    for i in range(len(ok)):
        for j in range(i + 1, len(ok)):
            if same_source(stems[i], stems[j], name_ratio):
                join(i, j, "name")
    group = np.array([find(i) for i in range(len(ok))], dtype=np.int64)
    return SourceGroups(paths, labels, group, pairs, unreadable)


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
