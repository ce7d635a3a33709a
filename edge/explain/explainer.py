"""The Explainer: everything expensive is built once and reused for every image.

tf-keras-vis' Gradcam rebuilds its gradient model on every call (about 0.6 s on ResNet50 at
224 px here). The Explainer instead
- clones the model once with tf-keras-vis' ReplaceToLinear modifier, so scores are logits
  (sigmoid/softmax saturation would zero the gradients of confident predictions),
- extracts [logits, target feature map] once with tf-keras-vis' ExtractIntermediateLayerForGradcam
  (layer named explicitly, seek_penultimate_conv_layer=False: tf-keras-vis 0.8.7 cannot detect
  tf-keras conv layers under TF >= 2.16, see ../shared/NOTES.md),
- traces one tf.function per method (shape-polymorphic batch) that returns the prediction and
  the CAM together, so an explanation costs one forward and one backward pass.
tf.functions are safe to call from several threads once traced; the server still bounds
concurrency with its own worker pool.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from edge.core._tf import keras, tf  # tf-keras must be set up before tf_keras_vis imports tensorflow

# isort: split
from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayerForGradcam, ReplaceToLinear

from edge.core.bundle import Bundle
from edge.core.errors import EdgeError
from edge.core.preprocess import preprocess

from .explanation import Explanation
from .mapping import minmax
from .methods import CamMethod, get_method


def spatial_layers(model) -> list[str]:
    """Names of layers with an N x h x w x C output (candidate CAM targets), input side first."""
    out = []
    for layer in model.layers:
        shape = getattr(layer, "output_shape", None)
        if isinstance(shape, tuple) and len(shape) == 4 and not isinstance(layer, keras.layers.InputLayer):
            out.append(layer.name)
    return out


def resolve_layer(model, requested: str | None, default: str | None) -> str:
    """The CAM target layer: the one asked for, else the card's per-architecture choice, else
    the last spatial layer of the graph."""
    candidates = spatial_layers(model)
    name = requested or default
    if name is None:
        if not candidates:
            raise EdgeError("the model has no layer with a spatial feature map to explain")
        return candidates[-1]
    if name not in candidates:
        near = [c for c in candidates if name in c][:3] or candidates[-3:]
        raise EdgeError(f"layer '{name}' is not a spatial feature map of this model", hint=f"try one of {near}")
    return name


def _linear_clone(model) -> tuple[Any, str]:
    """(model with linear outputs, activation to re-apply) — or the model itself if its output
    activation is not one we can strip (then scores are probabilities)."""
    out_layer = model.get_layer(model.output_names[0])
    act = getattr(getattr(out_layer, "activation", None), "__name__", "")
    if act not in ("sigmoid", "softmax"):
        return model, "identity"
    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
    except (ValueError, TypeError):  # e.g. custom wrapped layers that cannot be cloned
        return model, "identity"
    ReplaceToLinear()(clone)
    return clone, act


class Explainer:
    """Predictions and CAMs for one bundle. Build once, call many times (thread-safe)."""

    def __init__(self, bundle: Bundle, layer: str | None = None, scorecam_channels: int = 32, warmup: bool = True):
        self.bundle = bundle
        self.spec = bundle.spec
        self.labels = bundle.labels
        self.task = bundle.task
        model = bundle.load_model()
        self.layer = resolve_layer(model, layer, bundle.card.gradcam_layer)
        self.scorecam_channels = int(scorecam_channels)
        linear, self.head = _linear_clone(model)
        self.cam_model = ExtractIntermediateLayerForGradcam(self.layer, seek_conv_layer=False)(linear)
        self.n_out = int(self.cam_model.outputs[0].shape[-1])
        sig = tf.TensorSpec([None, *self.spec.input_shape], tf.float32)
        self._predict = tf.function(self._predict_impl, input_signature=[sig])
        self._fns: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._sig = sig
        if warmup:  # trace now, not on the first request
            zero = np.zeros((1, *self.spec.input_shape), np.float32)
            self._predict(zero)
            self.run(zero, "gradcam")

    # --- graph pieces ------------------------------------------------------------------
    def _activate(self, logits):
        if self.head == "sigmoid":
            return tf.sigmoid(logits)
        if self.head == "softmax":
            return tf.nn.softmax(logits, axis=-1)
        return logits

    def _predict_impl(self, x):
        logits, _ = self.cam_model(x, training=False)
        return self._activate(logits)

    def _coef(self, logits, coef, auto):
        """Score = sum(logits * coef); with auto, coef = one-hot of the predicted class."""
        picked = tf.one_hot(tf.argmax(logits, axis=-1), self.n_out, dtype=logits.dtype)
        return tf.where(auto, picked, tf.broadcast_to(coef, tf.shape(logits)))

    def _gradient_fn(self, method: CamMethod):
        def fn(x, coef, offset, auto):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                logits, features = self.cam_model(x, training=False)
                c = self._coef(logits, coef, auto)
                score = tf.reduce_sum(logits * c, axis=-1)
            grads = tape.gradient(score, features)
            return self._activate(logits), method.cam(features, grads, score)

        return fn

    def _scorecam_fn(self, method: CamMethod):
        H, W = self.spec.size

        def one(x1, coef, offset, auto):  # x1: 1 x H x W x C
            logits, features = self.cam_model(x1, training=False)
            c = self._coef(logits, coef, auto)[0]
            a = features[0]
            k = tf.minimum(self.scorecam_channels, tf.shape(a)[-1])
            idx = tf.math.top_k(tf.math.reduce_std(a, axis=(0, 1)), k).indices
            up = tf.image.resize(tf.gather(a, idx, axis=-1)[None], (H, W), method="bilinear")[0]
            lo = tf.reduce_min(up, axis=(0, 1), keepdims=True)
            hi = tf.reduce_max(up, axis=(0, 1), keepdims=True)
            masks = tf.transpose((up - lo) / (hi - lo + 1e-7), (2, 0, 1))[..., None]  # k x H x W x 1
            masked_logits, _ = self.cam_model(x1 * masks, training=False)
            raw = self._activate(masked_logits)
            # target probability: p (or 1 - p for a binary model's negative class) per masked input
            target_p = offset + tf.reduce_sum(raw * c, axis=-1)
            weights = tf.scatter_nd(idx[:, None], target_p, tf.shape(a)[-1:])[None]
            return self._activate(logits), method.cam(features, weights, target_p)

        def fn(x, coef, offset, auto):
            probs, cams = tf.map_fn(
                lambda xi: tuple(t[0] for t in one(xi[None], coef, offset, auto)), x, fn_output_signature=(tf.float32, tf.float32)
            )
            return probs, cams

        return fn

    def _fn_for(self, method: CamMethod):
        with self._lock:
            if method.name not in self._fns:
                build = self._gradient_fn if method.uses_gradients else self._scorecam_fn
                spec = [
                    self._sig,
                    tf.TensorSpec([self.n_out], tf.float32),
                    tf.TensorSpec([], tf.float32),
                    tf.TensorSpec([], tf.bool),
                ]
                self._fns[method.name] = tf.function(build(method), input_signature=spec)
            return self._fns[method.name]

    # --- public API ----------------------------------------------------------------------
    def target_index(self, target: str | int | None) -> int | None:
        """Label (or index) -> index; None means the default target."""
        if target is None or target == "":
            return None
        if isinstance(target, int) or (
            isinstance(target, str) and target.isascii() and target.isdigit() and target not in self.labels
        ):
            i = int(target)
            if not 0 <= i < len(self.labels):
                raise EdgeError(f"target index {i} out of range for labels {self.labels}")
            return i
        if target not in self.labels:
            raise EdgeError(f"unknown target '{target}'", hint=f"the model's labels are {self.labels}")
        return self.labels.index(target)

    def default_target(self) -> int | None:
        """Binary: the positive class (where does the model see a fracture?). Multi-class: the
        predicted class (None = decided inside the graph)."""
        return self.bundle.positive_index() if self.task == "binary" else None

    def _score_vector(self, idx: int | None) -> tuple[np.ndarray, float, bool]:
        coef = np.zeros(self.n_out, np.float32)
        if idx is None:
            return coef, 0.0, True
        if self.task == "binary":  # one output = P(positive)
            positive = idx == self.bundle.positive_index()
            coef[0] = 1.0 if positive else -1.0
            return coef, 0.0 if positive else 1.0, False
        coef[idx] = 1.0
        return coef, 0.0, False

    def run(
        self, x: np.ndarray, method: str = "gradcam", target: str | int | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Preprocessed batch N x H x W x C -> (N x K probabilities, N x h x w CAMs in 0..1, target indices)."""
        m = get_method(method)
        idx = self.target_index(target)
        if idx is None:
            idx = self.default_target()
        coef, offset, auto = self._score_vector(idx)
        raw, cams = self._fn_for(m)(
            tf.constant(x, tf.float32), tf.constant(coef), tf.constant(offset, tf.float32), tf.constant(auto)
        )
        probs = self.bundle.probabilities(raw.numpy())
        targets = [int(np.argmax(p)) if idx is None else idx for p in probs]
        return probs, np.stack([minmax(c) for c in cams.numpy()]), targets

    def predict(self, pixels: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """One decoded image -> (K probabilities, timings in ms)."""
        t0 = time.perf_counter()
        x = preprocess(pixels, self.spec)[None]
        t1 = time.perf_counter()
        probs = self.bundle.probabilities(self._predict(tf.constant(x)).numpy())[0]
        t2 = time.perf_counter()
        return probs, {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3}

    def explain(self, pixels: np.ndarray, method: str = "gradcam", target: str | int | None = None) -> Explanation:
        """One decoded image (as from edge.core.imageio) -> its Explanation."""
        m = get_method(method)
        t0 = time.perf_counter()
        x = preprocess(pixels, self.spec)[None]
        t1 = time.perf_counter()
        probs, cams, targets = self.run(x, m.name, target)
        t2 = time.perf_counter()
        return Explanation(
            m.name,
            m.title,
            targets[0],
            self.labels[targets[0]],
            self.labels,
            probs[0],
            cams[0],
            (int(pixels.shape[0]), int(pixels.shape[1])),
            self.spec,
            {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3},
        )
