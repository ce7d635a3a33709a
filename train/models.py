"""One registry of architectures, each built as one flat functional graph.

Flat (no model nested in a model) because tensorflow-model-optimization's quantize_model
cannot wrap nested models (tfmot #957, #377), and no Rescaling layer inside the graph
(tfmot #647): normalisation lives in the PreprocessSpec instead.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.core._tf import keras
from edge.core.errors import EdgeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchInfo:
    name: str
    build: Callable[..., keras.Model]
    pretrained: bool  # has ImageNet weights in keras.applications
    default_channels: int
    finetune_prefixes: tuple[str, ...] = ()  # backbone layers unfrozen in the fine-tune phase
    gradcam_layer: str | None = None  # last conv feature map (Grad-CAM target)
    backbone_prefixes: tuple[str, ...] = ()  # layers that belong to the backbone (frozen in warm-up)


# Keras' own cache file names for the include_top=False ImageNet weights; keras.applications
# looks them up in $KERAS_HOME/models (default ~/.keras/models) before downloading.
IMAGENET_FILES = {
    "vgg16": ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "resnet50": ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "4d473c1dd8becc155b73f8504c6f6626"),
}
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{arch}/{fname}"


def _head(x, n_outputs: int, dropout: float, name: str = "head"):
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    activation = "sigmoid" if n_outputs == 1 else "softmax"
    return keras.layers.Dense(n_outputs, activation=activation, name=f"{name}_out")(x)


def _conv_bn(x, filters: int, name: str, kernel: int = 3, strides: int = 1):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _res_stage(x, filters: int, name: str, downsample: bool):
    """Two 3x3 convs with a shortcut; Conv->BN pairs and Add keep it QAT-friendly."""
    strides = 2 if downsample else 1
    shortcut = x
    if downsample or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = _conv_bn(x, filters, f"{name}_a", strides=strides)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_b_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def build_custom(input_shape, n_outputs: int, widths=(24, 48, 96, 160, 224), dropout: float = 0.3, **_) -> keras.Model:
    """A small residual CNN for phones (~1.3 M parameters at the default widths).

    A stride-2 stem keeps the cost of full-resolution layers low; five stages halve the
    resolution down to 1/32, like the ImageNet backbones, so Grad-CAM grids are comparable."""
    inp = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inp, widths[0], "stem", kernel=5, strides=2)
    for i, w in enumerate(widths[1:], start=1):
        x = _res_stage(x, w, f"stage{i}", downsample=True)
    x = _conv_bn(x, widths[-1], "features", kernel=1)
    return keras.Model(inp, _head(x, n_outputs, dropout), name="custom_cnn")


def build_tiny(input_shape, n_outputs: int, dropout: float = 0.1, **_) -> keras.Model:
    """A test architecture (like timm's test_* models): builds and trains in seconds."""
    inp = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inp, 8, "stem", strides=2)
    x = _res_stage(x, 16, "stage1", downsample=True)
    x = _conv_bn(x, 16, "features", kernel=1)
    return keras.Model(inp, _head(x, n_outputs, dropout), name="tiny_cnn")


def _application(arch: str):
    return {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50}[arch]


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
        raise EdgeError(f"ImageNet weights for {arch} are not in Keras' cache and cannot be downloaded ({type(e).__name__})",
                        cached, f"copy {fname} there, or use --weights PATH / --weights none") from None
    return Path(got)


def _build_application(arch: str, input_shape, n_outputs: int, weights: str | None, dropout: float = 0.3, **_) -> keras.Model:
    base = _application(arch)(include_top=False, weights=None, input_shape=tuple(input_shape))
    if weights == "imagenet":
        if input_shape[-1] != 3:
            raise EdgeError(f"ImageNet weights for {arch} need 3 input channels", hint="use --channels 3 (grey is replicated)")
        path = imagenet_weights_path(arch)
        base.load_weights(str(path))
        log.info("loaded ImageNet weights from %s", path)
    # Flat graph: the head continues from the backbone's output tensor, nothing nested.
    out = _head(base.output, n_outputs, dropout)
    return keras.Model(base.input, out, name=f"{arch}_fracture")


ARCHS: dict[str, ArchInfo] = {
    "custom": ArchInfo("custom", build_custom, False, 1, gradcam_layer="features_relu",
                       backbone_prefixes=()),
    "vgg16": ArchInfo("vgg16", lambda *a, **k: _build_application("vgg16", *a, **k), True, 3,
                      finetune_prefixes=("block5_",), gradcam_layer="block5_conv3", backbone_prefixes=("block", "input")),
    "resnet50": ArchInfo("resnet50", lambda *a, **k: _build_application("resnet50", *a, **k), True, 3,
                         finetune_prefixes=("conv5_",), gradcam_layer="conv5_block3_out",
                         backbone_prefixes=("conv", "pool", "input")),
    "tiny": ArchInfo("tiny", build_tiny, False, 1, gradcam_layer="features_relu"),
}


def get_arch(name: str) -> ArchInfo:
    if name not in ARCHS:
        close = difflib.get_close_matches(name, ARCHS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of {sorted(ARCHS)}"
        raise EdgeError(f"unknown architecture '{name}'", hint=hint)
    return ARCHS[name]


def create_model(arch: str, input_shape, n_outputs: int, weights: str | None = None, dropout: float = 0.3) -> keras.Model:
    """Build an architecture by name. ``weights``: None/'none', 'imagenet', or a path to a weights file."""
    info = get_arch(arch)
    w = None if weights in (None, "none") else weights
    if w == "imagenet" and not info.pretrained:
        raise EdgeError(f"'{arch}' has no ImageNet weights", hint="use --weights none or a weights file")
    model = info.build(tuple(input_shape), n_outputs, weights="imagenet" if w == "imagenet" else None, dropout=dropout)
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
    """'warmup': backbone frozen, head trains. 'finetune': also the top blocks. 'all': everything."""
    info = get_arch(arch)
    for layer in model.layers:
        in_backbone = any(layer.name.startswith(p) for p in info.backbone_prefixes)
        if phase == "all" or not in_backbone:
            layer.trainable = True
        elif phase == "warmup":
            layer.trainable = False
        else:  # finetune: top blocks only; BatchNorm stays frozen (statistics from ImageNet)
            top = any(layer.name.startswith(p) for p in info.finetune_prefixes)
            layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
