"""Finding labelled radiographs: class-folder trees and CSV manifests, and loading them.

Accepted layouts:
- ``root/<class>/*``           (no split; one is carved out by the caller if needed)
- ``root/<split>/<class>/*``   (split in train, val, test)
- a CSV manifest with columns ``path,label[,split]`` (paths relative to the CSV)
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, ImageReadError
from .imageio import is_supported_path, read_image
from .preprocess import PreprocessSpec, letterbox_u8

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
NEGATIVE_PREFIXES = ("not_", "not-", "non_", "non-", "no_", "no-", "normal", "negative")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    split: str | None = None


@dataclass
class Dataset:
    samples: list[Sample]
    classes: list[str]
    root: Path
    skipped: list[str] = field(default_factory=list)

    def split(self, name: str) -> Dataset:
        return Dataset([s for s in self.samples if s.split == name], self.classes, self.root)

    @property
    def splits(self) -> list[str]:
        return sorted({s.split for s in self.samples if s.split})

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for s in self.samples:
            out.setdefault(s.split or "all", Counter())[s.label] += 1
        return {k: dict(v) for k, v in out.items()}

    def labels_index(self, classes: Sequence[str] | None = None) -> np.ndarray:
        classes = list(classes or self.classes)
        idx = {c: i for i, c in enumerate(classes)}
        unknown = sorted({s.label for s in self.samples} - set(idx))
        if unknown:
            raise DataError(f"labels {unknown} are not among the model's classes {classes}", self.root)
        return np.array([idx[s.label] for s in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def capped(self, n: int | None, seed: int = 0) -> Dataset:
        """At most ``n`` images per (split, class), drawn reproducibly: quick runs and tests."""
        if not n:
            return self
        rng = np.random.default_rng(seed)
        keep: list[Sample] = []
        for key in sorted({(s.split, s.label) for s in self.samples}, key=str):
            group = [s for s in self.samples if (s.split, s.label) == key]
            keep += [group[i] for i in sorted(rng.permutation(len(group))[:n])]
        return Dataset(keep, self.classes, self.root)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_supported_path(p))


def discover(root: str | Path) -> Dataset:
    """Find labelled images under a folder or in a CSV manifest."""
    root = Path(root)
    if not root.exists():
        raise DataError("data path does not exist", root)
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return read_manifest(root)
        raise DataError("expected a folder of class folders or a CSV manifest", root)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DataError("no class folders found", root, "expected root/<class>/* or root/<split>/<class>/*")
    samples: list[Sample] = []
    if all(d.name.lower() in SPLIT_ALIASES for d in subdirs):
        for sd in subdirs:
            split = SPLIT_ALIASES[sd.name.lower()]
            for cd in sorted(p for p in sd.iterdir() if p.is_dir() and not p.name.startswith(".")):
                samples += [Sample(f, cd.name, split) for f in _class_files(cd)]
    else:
        for cd in subdirs:
            samples += [Sample(f, cd.name, None) for f in _class_files(cd)]
    if not samples:
        raise DataError("no images found (PNG, JPEG or DICOM)", root)
    classes = sorted({s.label for s in samples})
    return Dataset(samples, classes, root)


def _class_files(class_dir: Path) -> list[Path]:
    files = _files(class_dir)
    if not files:
        raise DataError("class folder has no images", class_dir, "add images or remove the folder")
    return files


def read_manifest(csv_path: str | Path) -> Dataset:
    csv_path = Path(csv_path)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        cols = {c.strip().lower() for c in reader.fieldnames or []}
        if not {"path", "label"} <= cols:
            raise DataError("manifest needs columns 'path' and 'label' (optional 'split')", csv_path)
        samples = []
        for i, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            if not row["path"] or not row["label"]:
                raise DataError(f"line {i}: empty path or label", csv_path)
            p = Path(row["path"])
            p = p if p.is_absolute() else csv_path.parent / p
            split = SPLIT_ALIASES.get(row.get("split", "").lower()) if row.get("split") else None
            samples.append(Sample(p, row["label"], split))
    if not samples:
        raise DataError("manifest lists no images", csv_path)
    return Dataset(samples, sorted({s.label for s in samples}), csv_path.parent)


def positive_label(classes: Sequence[str], requested: str | None = None) -> str:
    """For a binary task, the class whose probability the model outputs."""
    if requested:
        if requested not in classes:
            raise DataError(f"positive label '{requested}' is not one of {list(classes)}")
        return requested
    if len(classes) != 2:
        raise DataError(f"a binary task needs 2 classes, found {len(classes)}: {list(classes)}")
    neg = [c for c in classes if c.lower().startswith(NEGATIVE_PREFIXES)]
    if len(neg) == 1:
        return next(c for c in classes if c not in neg)
    raise DataError(f"cannot tell which of {list(classes)} is positive", hint="pass --positive LABEL")


def list_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files and folders given on a command line -> image files (folders searched recursively)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = _files(p)
            if not found:
                raise DataError("folder has no images (PNG, JPEG or DICOM)", p)
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise DataError("no such file or folder", p)
    return out


def load_canvases(
    paths: Sequence[Path],
    spec: PreprocessSpec,
    skip_bad: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
    workers: int = 4,
) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode and letterbox many images in threads (PIL releases the GIL).

    Returns (N x H x W uint8 canvases of the good files, their indices, [(path, problem)] of the bad).
    With ``skip_bad=False`` the first bad file raises ImageReadError.
    """

    def one(p: Path) -> np.ndarray | ImageReadError:
        try:
            return letterbox_u8(read_image(p).pixels, spec)
        except ImageReadError as e:
            return e

    canvases, kept, bad = [], [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results: Iterable[np.ndarray | ImageReadError] = pool.map(one, paths)
        if progress:
            results = progress(results)
        for i, r in enumerate(results):
            if isinstance(r, ImageReadError):
                if not skip_bad:
                    raise r
                bad.append((str(paths[i]), r.message))
            else:
                canvases.append(r)
                kept.append(i)
    arr = np.stack(canvases) if canvases else np.zeros((0, *spec.size), np.uint8)
    return arr, kept, bad


def read_metadata(csv_path: str | Path) -> dict[str, dict[str, str]]:
    """A per-image metadata CSV keyed by file name (first column: image_id, path or name)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError("metadata CSV not found", csv_path)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise DataError("metadata CSV is empty", csv_path)
        key = next((k for k in ("image_id", "path", "name", "file") if k in reader.fieldnames), reader.fieldnames[0])
        return {Path(row[key]).name: row for row in reader}
