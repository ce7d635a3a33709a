"""PNG plots people would rather look at than read: curves, ROC, confusion, reliability.

Matplotlib with the Agg backend (no display); every function writes atomically and returns the path.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .fsutil import atomic_path


def _plt() -> Any:  # matplotlib.pyplot, imported on first use
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, dest: Path) -> Path:
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)
    return dest


def training_curves(csv_files: Sequence[Path], dest: Path) -> Path | None:
    rows: list[dict[str, float]] = []
    phase_starts = []
    for f in csv_files:
        with open(f) as fh:
            phase = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(fh)]
        if phase:
            phase_starts.append((len(rows), f.stem.replace("log_", "")))
            rows += phase
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ep = np.arange(1, len(rows) + 1)
    for ax, keys, title in ((axes[0], ("loss", "val_loss"), "loss"), (axes[1], ("auc", "val_auc"), "AUROC")):
        for k in keys:
            if k in rows[0]:
                ax.plot(ep, [r.get(k, np.nan) for r in rows], label=k, marker=".")
        for start, name in phase_starts[1:]:
            ax.axvline(start + 0.5, color="grey", ls="--", lw=0.8)
            ax.text(start + 0.6, ax.get_ylim()[1], name, va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    return _save(fig, dest)


def roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], dest: Path, point: tuple[float, float] | None = None) -> Path:
    """curves: name -> (fpr, tpr, auroc). ``point``: the operating point (fpr, tpr)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for name, (fpr, tpr, a) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUROC {a:.3f})")
    if point:
        ax.plot([point[0]], [point[1]], "o", color="crimson", label="operating point")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, dest)


def confusion(matrices: dict[str, tuple[list[str], Any]], dest: Path) -> Path:
    """One or more confusion matrices side by side: name -> (labels, matrix rows=true, cols=predicted)."""
    plt = _plt()
    n = len(matrices)
    k = max(len(lbls) for lbls, _ in matrices.values())
    fig, axes = plt.subplots(1, n, figsize=(max(3.8, 0.6 * k + 2.5) * n, max(3.4, 0.55 * k + 2)), squeeze=False)
    for ax, (name, (labels, m)) in zip(axes[0], matrices.items(), strict=True):
        m = np.asarray(m)
        ax.imshow(m, cmap="Blues")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
    return _save(fig, dest)


def reliability(bins: list[dict[str, float]], ece: float, dest: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    centers = [(b["lo"] + b["hi"]) / 2 for b in bins]
    ax.bar(centers, [b["accuracy"] for b in bins], width=0.09, alpha=0.7, label="observed frequency")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color="darkorange", label="per bin")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"Reliability (ECE {ece:.3f})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, dest)


def histogram(series: dict[str, np.ndarray], dest: Path, title: str, xlabel: str, bins: int = 40) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, v in series.items():
        ax.hist(np.asarray(v), bins=bins, alpha=0.6, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if len(series) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, dest)
