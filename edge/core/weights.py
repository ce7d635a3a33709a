"""Load a bundle's model as weights only: the graph comes from the registry, never from the file.

A Keras model file is code: ``load_model`` rebuilds whatever layers the file describes, and a
Lambda layer's Python runs while loading, even when every hash is right (the lesson behind
safetensors). So the card's architecture is rebuilt from edge.core.architectures (and wrapped
by tfmot when the card says quantization-aware), the file's layer list (plain HDF5 attributes
and JSON, parsed as data) must name the same layers of the same classes, and only then are the
weight arrays read into the rebuilt graph.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .architectures import get_arch
from .card import ModelCard
from .errors import BundleError, EdgeError


def saved_layers(path: Path) -> tuple[list[str], dict[str, str] | None]:
    """(layer names in weight order, {name: class} from the stored config or None), read as data."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f.get("model_weights", f)
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
            raw = f.attrs.get("model_config")
    except (OSError, KeyError) as e:
        raise BundleError(f"not a readable Keras HDF5 weights file ({e})", path) from None
    if not names:
        raise BundleError("the HDF5 file holds no Keras layer weights", path)
    classes = None
    if raw is not None:
        try:
            cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            classes = {layer["config"]["name"]: layer["class_name"] for layer in cfg["config"]["layers"]}
        except (ValueError, KeyError, TypeError) as e:
            raise BundleError(f"the model file's layer list is malformed ({e})", path) from None
    return names, classes


def rebuild(card: ModelCard) -> Any:  # a keras.Model
    """The card's graph, freshly built (random weights): the registry's architecture, QAT-wrapped if asked."""
    c = card.contract
    try:
        info = get_arch(c.arch)
    except EdgeError as e:
        raise BundleError(f"the card's architecture cannot be rebuilt: {e.message}", hint=e.hint) from None
    model = info.build(tuple(c.input["shape"]), int(c.output["units"]))
    if c.qat:
        import tensorflow_model_optimization as tfmot

        q = tfmot.quantization.keras
        with q.quantize_scope():
            if (card.compression or {}).get("prune"):  # the prune-preserving scheme `edge compress` used
                scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
                model = q.quantize_apply(q.quantize_annotate_model(model), scheme)
            else:
                model = q.quantize_model(model)
    return model


HEAD_PREFIX = "head_"  # every registry graph ends in head_pool, head_dropout, head_out (architectures._head)
# (a bundle whose card names its backbone stores the head and whatever training changed; keep_changed_only)


def _backbone_source(contract: Any) -> Any:  # a pretrained.WeightSource
    """The installed weights a contract's backbone names, with the pinned hash it recorded."""
    from .pretrained import source_for

    src = source_for(contract.arch)
    if contract.backbone.get("sha256") != src.sha256:
        raise BundleError(
            f"the bundle's backbone is {src.arch} weights with SHA-256 {str(contract.backbone.get('sha256'))[:12]}…; "
            f"this toolkit pins {src.sha256[:12]}…",
            hint="re-create the bundle with this toolkit's weights",
        )
    return src


def keep_changed_only(model: Any, contract: Any, path: Path) -> list[str]:
    """Rewrite a saved model file with the weights of only the layers that differ from the named
    ImageNet weights (always the head; after fine-tuning also the trained blocks), keeping the whole
    layer list. Returns the stored layers' names.

    Why: EfficientNet-Lite0's backbone is 13.6 MB of float32; the wheel already holds it, a frozen
    probe changes none of it and the top-blocks recipe a quarter, so a bundle (and the detector and
    the types model together) carry each ImageNet weight zero times."""
    import h5py
    import numpy as np

    from .pretrained import imagenet_weights

    _backbone_source(contract)
    ref, _ = imagenet_weights(contract.arch)
    keep = {
        layer.name
        for layer in model.layers
        if layer.weights
        and (
            layer.name not in ref
            or not all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), ref[layer.name], strict=True))
        )
    }
    missing = [
        layer.name for layer in model.layers if layer.name.startswith(HEAD_PREFIX) and layer.weights and layer.name not in keep
    ]
    if missing:  # the head is never the ImageNet one; keep it even if it happens to match
        keep |= set(missing)
    full = path.with_suffix(".full.h5")
    path.rename(full)
    with h5py.File(full, "r") as src, h5py.File(path, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        sw, dw = src["model_weights"], dst.create_group("model_weights")
        for k, v in sw.attrs.items():
            dw.attrs[k] = v
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in sw.attrs["layer_names"]]
        stored = [n for n in names if n in keep or n.startswith(HEAD_PREFIX)]
        dw.attrs["layer_names"] = np.array([n.encode() for n in stored])
        for n in stored:
            sw.copy(n, dw)
    full.unlink()
    return stored


def _key(name: str, cls: str | None) -> str:
    """A layer's name without Keras' process-wide counter suffix (tfmot's quantize_layer_2, an
    unnamed input_3): the same graph built twice in one process numbers them differently."""
    return "<input>" if cls == "InputLayer" else re.sub(r"_\d+$", "", name)


def _mismatch(model: Any, names: list[str], classes: dict[str, str] | None, head_only: bool = False) -> str | None:
    """The first difference between the rebuilt graph and the file's layers, in words, or None."""
    if classes is None:  # save_bundle always stores the layer list; without it nothing can be compared
        return "the file lists no layers (not written by save_bundle)"
    built = [(layer.name, type(layer).__name__) for layer in model.layers]
    stored = list(classes.items())
    known = {_key(n, c) for n, c in built}
    extra = [(n, c) for n, c in stored if _key(n, c) not in known]
    if extra:
        n, c = extra[0]
        return f"layer '{n}' ({c}) is not part of the '{model.name}' architecture"
    if len(stored) != len(built):
        return f"the file has {len(stored)} layers, the architecture {len(built)}"
    for (fn, fc), (bn, bc) in zip(stored, built, strict=True):
        if fc != bc:
            return f"layer '{fn}' is a {fc}, the architecture has a {bc} there"
        if _key(fn, fc) != _key(bn, bc):
            return f"layer '{fn}' stands where the architecture has '{bn}'"
    stored_weights = [_key(n, classes.get(n)) for n in names]
    if head_only:  # a named backbone: the file holds the head and the layers that differ from it, in graph order
        order = [_key(n, c) for n, c in built]
        heads = [_key(n, c) for n, c in built if n.startswith(HEAD_PREFIX)]
        pos = [order.index(k) if k in order else -1 for k in stored_weights]
        if -1 in pos or pos != sorted(set(pos)) or not set(heads) <= set(stored_weights):
            return "the file must hold the head and the layers that differ from the named backbone, in graph order"
        return None
    if stored_weights != [_key(n, c) for n, c in built]:
        return "the file's weights are not stored in the architecture's layer order"
    return None


def load_weights_only(card: ModelCard, path: Path) -> Any:
    """Rebuild the card's graph and read ``path``'s weights into it; refuse a file that does not fit."""
    names, classes = saved_layers(path)
    model = rebuild(card)
    head_only = card.contract.backbone is not None
    why = _mismatch(model, names, classes, head_only)
    if why:
        raise BundleError(
            f"model file does not match the card's architecture '{card.arch}': {why}",
            path,
            "bundles load weights only; re-create the bundle with `edge train`",
        )
    if head_only:
        from .pretrained import load_imagenet

        _backbone_source(card.contract)
        try:
            load_imagenet(model, card.arch)
        except EdgeError as e:
            raise BundleError(f"the bundle's backbone cannot be loaded: {e.message}", e.path, e.hint) from None
    try:
        model.load_weights(str(path), by_name=head_only)
    except (ValueError, OSError, KeyError) as e:
        raise BundleError(f"weights do not fit the '{card.arch}' architecture ({str(e).splitlines()[0][:200]})", path) from None
    return model
