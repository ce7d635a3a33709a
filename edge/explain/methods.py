"""The CAM family: each method turns a feature map (and, for gradient methods, its gradients)
into a class activation map. Like pytorch-grad-cam's BaseCAM subclasses, each is a few lines.

All functions work on TensorFlow tensors so they run inside the Explainer's tf.function.
Shapes: features and grads are N x h x w x C; score is N; the CAM returned is N x h x w
(not normalised, after ReLU).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.core._tf import tf


@dataclass(frozen=True)
class CamMethod:
    name: str
    title: str  # written on overlays
    uses_gradients: bool = True

    def cam(self, features: tf.Tensor, grads: tf.Tensor, score: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError


class GradCam(CamMethod):
    """Selvaraju et al. 2017: channel weights = spatial mean of the gradients."""

    def cam(self, features, grads, score):
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))


class GradCamPlusPlus(CamMethod):
    """Chattopadhyay et al. 2018, with exp(score) as in the paper (and tf-keras-vis): higher-order
    gradient terms weight each location, which helps when several regions support the class."""

    def cam(self, features, grads, score):
        s = tf.reshape(tf.exp(score), (-1, 1, 1, 1))
        first = s * grads
        second = first * grads
        third = second * grads
        global_sum = tf.reduce_sum(features, axis=(1, 2), keepdims=True)
        denom = 2.0 * second + third * global_sum
        denom += tf.cast(tf.equal(second, 0.0), denom.dtype)  # 0/0 -> 0, not NaN
        alphas = second / denom
        norm = tf.reduce_sum(alphas, axis=(1, 2), keepdims=True)
        alphas /= norm + tf.cast(tf.equal(norm, 0.0), norm.dtype)
        weights = tf.reduce_sum(tf.nn.relu(first) * alphas, axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))


class ScoreCam(CamMethod):
    """Wang et al. 2020 (the 'faster' variant): the most varied feature channels, upsampled and
    min-max scaled, mask the input; each channel's weight is the target probability of the
    masked input. No gradients; the Explainer runs the masked batch."""

    def cam(self, features, grads, score):  # grads = per-channel weights here (N x C)
        w = tf.reshape(grads, (tf.shape(grads)[0], 1, 1, -1))
        return tf.nn.relu(tf.reduce_sum(features * w, axis=-1))


METHODS: dict[str, CamMethod] = {
    "gradcam": GradCam("gradcam", "Grad-CAM"),
    "gradcam++": GradCamPlusPlus("gradcam++", "Grad-CAM++"),
    "scorecam": ScoreCam("scorecam", "Score-CAM", uses_gradients=False),
}


def get_method(name: str) -> CamMethod:
    from edge.core.errors import EdgeError

    key = name.lower().replace("_", "").replace("-", "")
    key = {"gradcampp": "gradcam++", "gradcamplusplus": "gradcam++"}.get(key, key)
    if key not in METHODS:
        raise EdgeError(f"unknown explanation method '{name}'", hint=f"choose one of {', '.join(METHODS)}")
    return METHODS[key]
