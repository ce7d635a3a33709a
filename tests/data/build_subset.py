"""Rebuild tests/data/ from the full data (../shared/data): the bundled subset a bare clone tests on.

Run from the repository root: `python tests/data/build_subset.py /path/to/shared/data`.
Files are copied byte for byte (the truncated ones must stay truncated); the rule for each folder
is written next to it so the choice can be checked and redone.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
READABLE = {"train": 16, "val": 8, "test": 16}  # small_data takes 16/8/8; real_canvases takes up to 16 per test class
# Real quirks kept on purpose (found by `edge data check` on the full set):
TRUNCATED = [
    "train/not_fractured/IMG0004027.jpg",
    "train/not_fractured/IMG0004028.jpg",  # IMG00040xx: test_audit, test_cli
    "train/not_fractured/IMG0004029.jpg",
    "train/not_fractured/IMG0004100.jpg",  # IMG00041xx: test_explain, test_server
    "val/not_fractured/IMG0004310.jpg",
]
NEAR_DUPLICATE = ["train/fractured/IMG0002653.jpg", "val/fractured/IMG0004068.jpg"]  # correlation 0.99999 across splits
BONE_TYPES_PER_CLASS = 5  # test_train's multi-class run takes max_per_class=5


def _readable(folder: Path, n: int) -> list[Path]:
    from edge.core.errors import ImageReadError
    from edge.core.imageio import read_image

    out = []
    for p in sorted(folder.glob("*.jpg")):
        try:
            read_image(p)
        except ImageReadError:
            continue
        out.append(p)
        if len(out) == n:
            break
    return out


def _subset_csv(src: Path, dest: Path, names: set[str]) -> None:
    with open(src, newline="") as f:
        rows = list(csv.reader(f))
    with open(dest, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([rows[0]] + [r for r in rows[1:] if r[0] in names])


def build(shared: Path) -> None:
    src, dest = shared / "fracatlas", HERE / "fracatlas"
    shutil.rmtree(dest, ignore_errors=True)
    picked = [
        p.relative_to(src)
        for split, n in READABLE.items()
        for cls in ("fractured", "not_fractured")
        for p in _readable(src / split / cls, n)
    ]
    picked += [Path(r) for r in TRUNCATED + NEAR_DUPLICATE]
    for rel in picked:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dest / rel)
    names = {rel.name for rel in picked}
    _subset_csv(src / "metadata.csv", dest / "metadata.csv", names)
    _subset_csv(src / "boxes.csv", dest / "boxes.csv", names)
    types_src, types_dest = shared / "bone_break_types" / "train", HERE / "bone_break_types" / "train"
    shutil.rmtree(types_dest.parent, ignore_errors=True)
    for cls in sorted(d for d in types_src.iterdir() if d.is_dir()):
        (types_dest / cls.name).mkdir(parents=True)
        for p in sorted(cls.iterdir())[:BONE_TYPES_PER_CLASS]:
            shutil.copyfile(p, types_dest / cls.name / p.name)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    build(Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data"))
