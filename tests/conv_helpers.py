"""Helpers shared by the conversion/validation tests (test_runtime, test_convert, test_compress,
test_validate). Their session fixtures live in conftest.py, so each is built once per run.

The test bundle is the 'tiny' architecture with its output layer set so that its probabilities
spread over 0..1 on real radiographs: a freshly trained tiny model is near-constant, and a
near-constant model cannot show whether int8 keeps decisions (every image sits at the threshold).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

SIZE = 48


def real_canvases(root: Path, spec, n_per_class: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Readable real FracAtlas radiographs letterboxed to ``spec``; labels 1 = fractured."""
    from edge.core.data import load_canvases

    paths, labels = [], []
    for lbl, cls in ((1, "fractured"), (0, "not_fractured")):
        found = sorted((root / split / cls).glob("*.jpg"))[: n_per_class * 2]
        paths += found
        labels += [lbl] * len(found)
    canv, kept, _ = load_canvases(paths, spec, skip_bad=True)
    y = np.asarray(labels)[kept]
    pick = np.r_[np.flatnonzero(y == 1)[:n_per_class], np.flatnonzero(y == 0)[:n_per_class]]
    return canv[pick], y[pick]


def make_bundle(dest: Path, fracatlas: Path, arch: str = "tiny", size: int = SIZE, seed: int = 0, spread: bool = True):
    """A bundle built directly (no training) whose sigmoid output varies across real images."""
    from edge.core._tf import keras
    from edge.core.bundle import save_bundle
    from edge.core.card import Contract, ModelCard
    from edge.core.preprocess import PreprocessSpec, normalize
    from train.models import create_model, get_arch

    keras.utils.set_random_seed(seed)
    spec = PreprocessSpec.for_arch(arch, size)
    model = create_model(arch, spec.input_shape, 1)
    calib, _ = real_canvases(fracatlas, spec, 12, split="train")
    if spread:
        feats = keras.Model(model.input, model.get_layer("head_pool").output).predict(normalize(calib, spec), verbose=0)
        w = np.random.default_rng(seed).normal(size=(feats.shape[1], 1)).astype(np.float32)
        z = feats @ w
        k = 2.5 / max(float(z.std()), 1e-6)  # logits ~ N(0, 2.5): probabilities spread over 0..1
        model.get_layer("head_out").set_weights([w * k, np.array([-float(z.mean()) * k], np.float32)])
    card = ModelCard(
        Contract.create(arch, "binary", ["fractured", "not_fractured"], "fractured", 0.5, spec),
        model_id=f"test-{arch}-{seed}",
        gradcam_layer=get_arch(arch).gradcam_layer,
    )
    return save_bundle(dest, model, card, calibration=calib)


def copy_class_folder(fracatlas: Path, dest: Path, n_per_class: int, split: str = "test") -> Path:
    """dest/<class>/ with readable real radiographs (the validator's usual input)."""
    from edge.core.errors import ImageReadError
    from edge.core.imageio import read_image

    for cls in ("fractured", "not_fractured"):
        (dest / cls).mkdir(parents=True, exist_ok=True)
        n = 0
        for p in sorted((fracatlas / split / cls).glob("*.jpg")):
            try:
                read_image(p)
            except ImageReadError:
                continue
            shutil.copy(p, dest / cls / p.name)
            n += 1
            if n == n_per_class:
                break
    return dest
