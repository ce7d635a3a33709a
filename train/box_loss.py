"""Box-guided attention: an auxiliary loss that pulls the class-activation map into the boxes.

For a GAP + Dense head the class-activation map (CAM, Zhou et al. 2016) of class c is the
Grad-CAM layer's feature map times the dense kernel's column c: it is the score's spatial
decomposition, differentiable without second-order gradients. For each positive training
image with radiologists' boxes the loss is

    1 - (positive CAM mass in the cells the boxes overlap) / (total positive CAM mass),

0 when all the evidence lies in the boxes, 1 when none does. Images without boxes (all the
negatives, and positives nobody boxed) contribute nothing and train as before. The weight
ramps up linearly over the first epochs (by optimizer step, so a resumed run ramps alike):
a strong pull on an untrained map wrecked training in a study at 448 px (weight 1), while
0.1-0.5 trained normally.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.core._tf import keras, tf
from edge.core.boxes import Box, to_canvas
from edge.core.errors import EdgeError
from edge.core.imageio import read_image

HEAD_POOL, HEAD_OUT = "head_pool", "head_out"  # edge.core.architectures._head
EPS = 1e-7


def cam_box_loss(cam: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Per image: 1 - positive CAM mass inside ``mask`` / total positive CAM mass.

    cam, mask: (B, h, w). An image with no positive mass scores 1 (nothing points at the box)."""
    pos = tf.nn.relu(cam)
    inside = tf.reduce_sum(pos * mask, axis=[1, 2])
    total = tf.reduce_sum(pos, axis=[1, 2])
    return 1.0 - inside / (total + EPS)


def class_cam(features: tf.Tensor, kernel: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """(B, h, w, K) features, (K, C) dense kernel, (B, C) targets -> (B, h, w) CAM of each image's
    own class (binary: the one positive unit)."""
    cam = tf.einsum("bhwk,kc->bhwc", features, kernel)
    if kernel.shape[-1] == 1:
        return cam[..., 0]
    return tf.einsum("bhwc,bc->bhw", cam, tf.cast(targets, cam.dtype))


def ramp(weight: float, step: tf.Tensor, ramp_steps: int) -> tf.Tensor:
    """weight * min(1, (step + 1) / ramp_steps): linear warm-up of the auxiliary loss."""
    frac = tf.cast(step + 1, tf.float32) / float(max(1, ramp_steps))
    return weight * tf.minimum(1.0, frac)


def check_arch(model: Any, layer: str) -> None:
    """The CAM identity needs the Grad-CAM layer to feed the global pooling of the head directly."""
    pool = model.get_layer(HEAD_POOL)
    inbound = pool.inbound_nodes[0].inbound_layers
    if getattr(inbound, "name", None) != layer:
        raise EdgeError(
            f"--boxes needs the Grad-CAM layer '{layer}' to feed the global pooling of the head",
            hint="use --arch custom, custom448, resnet50 or tiny",
        )


class BoxGuided(keras.Model):
    """The same graph (same layers, same weights files) whose training step adds the box loss.

    Training batches carry y = (targets, box masks on the CAM grid); validation batches are plain
    (targets), scored by the inherited test step."""

    def __init__(self, model: Any, layer: str, weight: float, ramp_steps: int):
        check_arch(model, layer)
        super().__init__(model.inputs, model.outputs, name=model.name)
        two = keras.Model(model.inputs, [model.outputs[0], model.get_layer(layer).output])
        # a bound method, not an attribute holding the model: Keras would track a model attribute
        # as a nested layer and change the weights files' layout
        self._forward_with_features = two.__call__
        self.box_weight, self.ramp_steps = float(weight), int(ramp_steps)
        self.box_tracker = keras.metrics.Mean(name="box_loss")

    @property
    def metrics(self) -> list[Any]:
        return [*super().metrics, self.box_tracker]

    def test_step(self, data: Any) -> dict[str, Any]:
        # validation data has no masks: a val_box_loss column would read 0
        return {k: v for k, v in super().test_step(data).items() if k != self.box_tracker.name}

    def train_step(self, data: Any) -> dict[str, Any]:
        x, (y, mask), sw = keras.utils.unpack_x_y_sample_weight(data)
        kernel = self.get_layer(HEAD_OUT).kernel  # looked up, not kept: an attribute would be saved as the model's own
        with tf.GradientTape() as tape:
            y_pred, feats = self._forward_with_features(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sw)
            per_image = cam_box_loss(class_cam(feats, kernel, y), mask)
            has = tf.cast(tf.reduce_sum(mask, axis=[1, 2]) > 0, per_image.dtype)
            if kernel.shape[-1] == 1:  # binary: boxes mark positives only; a negative's box is ignored
                has *= tf.cast(y[:, 0] > 0.5, has.dtype)
            box = tf.reduce_sum(per_image * has) / tf.maximum(1.0, tf.reduce_sum(has))
            w = ramp(self.box_weight, self.optimizer.iterations, self.ramp_steps)
            # compute_loss already divides by the replicas (gradients are summed across them)
            total = loss + w * box / tf.distribute.get_strategy().num_replicas_in_sync
        self.optimizer.minimize(total, self.trainable_variables, tape=tape)
        self.box_tracker.update_state(box, sample_weight=tf.minimum(1.0, tf.reduce_sum(has)))
        logs = self.compute_metrics(x, y, y_pred, sw)
        return {**logs, "box_weight": w}


def canvas_boxes(paths: Sequence[Path], table: dict[str, list[Box]], size: tuple[int, int]) -> list[np.ndarray]:
    """Per image, its boxes (k, 4) on the letterboxed canvas (empty when it has none). The images
    with boxes are decoded once more for their size (boxes are fractions of the decoded image)."""
    out = []
    for p in paths:
        found = table.get(Path(p).name)
        out.append(to_canvas(found, read_image(p).pixels.shape[:2], size) if found else np.zeros((0, 4)))
    return out


def feature_grid(model: Any, layer: str) -> tuple[int, int]:
    shape = model.get_layer(layer).output.shape
    return int(shape[1]), int(shape[2])
