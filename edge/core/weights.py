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
            group = f["model_weights"] if "model_weights" in f else f
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


def rebuild(card: ModelCard):
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


def _mismatch(model, names: list[str], classes: dict[str, str] | None) -> str | None:
    """The first difference between the rebuilt graph and the file's layers, in words, or None.

    Input layers carry no weights and older files name them by Keras' process-wide counter
    (input_1, input_2...), so an input layer matches the graph's input whatever its name."""
    inputs = {layer.name for layer in model.layers if type(layer).__name__ == "InputLayer"}
    if classes is not None:
        renamed = {n: next(iter(inputs)) for n, c in classes.items() if c == "InputLayer" and len(inputs) == 1}
        classes = {renamed.get(n, n): c for n, c in classes.items()}
        names = [renamed.get(n, n) for n in names]
    built = {layer.name: type(layer).__name__ for layer in model.layers}
    if classes is not None:
        extra = [n for n in classes if n not in built]
        if extra:
            return f"layer '{extra[0]}' ({classes[extra[0]]}) is not part of the '{model.name}' architecture"
        missing = [n for n in built if n not in classes]
        if missing:
            return f"layer '{missing[0]}' of the architecture is missing"
        wrong = [n for n in built if classes[n] != built[n]]
        if wrong:
            return f"layer '{wrong[0]}' is a {classes[wrong[0]]}, the architecture has a {built[wrong[0]]}"
    unknown = [n for n in names if n not in built]
    if unknown:
        return f"weights for layer '{unknown[0]}', which is not part of the '{model.name}' architecture"
    if names != list(built):  # tf-keras stores every layer's name, in graph order
        return "the file's layers are not the architecture's layers in the architecture's order"
    return None


def load_weights_only(card: ModelCard, path: Path) -> Any:
    """Rebuild the card's graph and read ``path``'s weights into it; refuse a file that does not fit."""
    names, classes = saved_layers(path)
    model = rebuild(card)
    why = _mismatch(model, names, classes)
    if why:
        raise BundleError(f"model file does not match the card's architecture '{card.arch}': {why}", path,
                          "bundles load weights only; re-create the bundle with `edge train`")
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as e:
        raise BundleError(f"weights do not fit the '{card.arch}' architecture ({str(e).splitlines()[0][:200]})", path) from None
    return model
