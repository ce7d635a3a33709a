"""The bundled subset (tests/data) holds what the fixtures and tests rely on, found by the audit
itself: the real truncated JPEGs, the real cross-split near-duplicate, boxes for every fractured image."""

from __future__ import annotations

import csv
from pathlib import Path

from edge.core.audit import audit


def test_audit_of_bundled_set_finds_its_real_quirks(bundled_data: Path):
    rep = audit(bundled_data / "fracatlas")
    assert {b["path"] for b in rep["unreadable"]} == {
        "train/not_fractured/IMG0004027.jpg",
        "train/not_fractured/IMG0004028.jpg",
        "train/not_fractured/IMG0004029.jpg",
        "train/not_fractured/IMG0004100.jpg",
        "val/not_fractured/IMG0004310.jpg",
    }
    assert all("truncated" in b["problem"] for b in rep["unreadable"])
    assert [(d["a"], d["b"], d["kind"]) for d in rep["leakage"]] == [
        ("train/fractured/IMG0002653.jpg", "val/fractured/IMG0004068.jpg", "near")
    ]
    # enough readable images per class for small_data (16/8/8) and real_canvases (16 per test class)
    readable = {(s, c): n for s, per in rep["counts"].items() for c, n in per.items()}
    assert readable[("train", "fractured")] >= 16 and readable[("test", "not_fractured")] >= 16


def test_bundled_tables_cover_the_images(bundled_data: Path):
    root = bundled_data / "fracatlas"
    names = {p.name for p in root.rglob("*.jpg")}
    with open(root / "metadata.csv", newline="") as f:
        meta = {r["image_id"]: r for r in csv.DictReader(f)}
    with open(root / "boxes.csv", newline="") as f:
        boxed = {r["image_id"] for r in csv.DictReader(f)}
    assert set(meta) == names
    fractured = {p.name for p in root.glob("*/fractured/*.jpg")}
    assert fractured <= boxed <= names
    assert all(
        meta[n]["label"] == p.parent.name and meta[n]["split"] == p.parents[1].name for p in root.rglob("*.jpg") for n in [p.name]
    )
    types = sorted(d.name for d in (bundled_data / "bone_break_types" / "train").iterdir())
    assert len(types) == 10 and all(len(list((bundled_data / "bone_break_types" / "train" / t).iterdir())) == 5 for t in types)
