"""Class-imbalance handling: class weights, balanced oversampling, or focal loss.

FracAtlas has about one fractured image in six; without one of these the model learns to say
"not fractured". The mode is recorded in the bundle's training configuration.
"""

from __future__ import annotations

import numpy as np

from edge.core._tf import keras
from edge.core.errors import EdgeError

MODES = ("none", "class_weight", "oversample", "focal")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise EdgeError(f"unknown imbalance mode '{mode}'", hint=f"choose one of {list(MODES)}")
    return mode


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """n / (k * count_c): each class contributes equally to the loss."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise EdgeError(f"a class has no training images (counts {counts.astype(int).tolist()})")
    w = counts.sum() / (n_classes * counts)
    return {i: float(v) for i, v in enumerate(w)}


def balanced_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` indices with every class equally likely (oversampling the rare ones)."""
    classes = np.unique(labels)
    per_class = [np.flatnonzero(labels == c) for c in classes]
    which = rng.integers(0, len(classes), size=n)
    return np.array([rng.choice(per_class[c]) for c in which], dtype=np.int64)


def loss_for(task: str, mode: str, labels: np.ndarray | None = None, gamma: float = 2.0):
    """The loss for a task; focal loss when asked, with alpha from the class frequencies."""
    if task == "binary":
        if mode == "focal":
            pos_rate = float(np.mean(labels)) if labels is not None and len(labels) else 0.5
            return keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=1.0 - pos_rate, gamma=gamma)
        return keras.losses.BinaryCrossentropy()
    if mode == "focal":
        return keras.losses.CategoricalFocalCrossentropy(gamma=gamma)
    return keras.losses.CategoricalCrossentropy()
