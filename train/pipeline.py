"""tf.data input pipelines over decoded, letterboxed uint8 canvases held in memory.

Decoding and letterboxing happen once (edge.core.data.load_canvases); each epoch then only
augments and normalises, in parallel batches, so the pipeline outruns the training step
(`edge bench train` measures both).
"""

from __future__ import annotations

import numpy as np

from edge.core._tf import tf
from edge.core.boxes import grid_mask
from edge.core.preprocess import PreprocessSpec, normalize

from .augment import Augmenter
from .imbalance import balanced_indices


class BatchPlan:
    """Which samples go in which batch, reproducibly per (seed, epoch).

    Each pass over the dataset is the next epoch; a resumed run sets ``epoch`` first."""

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int, balanced: bool, epoch: int = 0):
        self.labels, self.batch_size, self.seed, self.balanced = labels, batch_size, seed, balanced
        self.epoch = epoch

    @property
    def steps(self) -> int:
        return max(1, int(np.ceil(len(self.labels) / self.batch_size)))

    def batches(self):
        # the epoch advances when a pass starts: tf.data stops pulling after the last batch, so
        # code after the loop would not run and every later epoch would repeat the same batches
        epoch, self.epoch = self.epoch, self.epoch + 1
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.labels)
        order = balanced_indices(self.labels, n, rng) if self.balanced else rng.permutation(n)
        for step in range(self.steps):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield idx, int(rng.integers(0, 2**31 - 1))


def targets_for(labels: np.ndarray, n_classes: int, task: str) -> np.ndarray:
    if task == "binary":
        return labels.astype(np.float32)[:, None]
    return np.eye(n_classes, dtype=np.float32)[labels]


def train_dataset(
    canvases: np.ndarray,
    targets: np.ndarray,
    spec: PreprocessSpec,
    plan: BatchPlan,
    augmenter: Augmenter,
    sample_weights: np.ndarray | None = None,
    boxes: list[np.ndarray] | None = None,
    grid: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Augmented, normalised training batches; ``targets`` already shaped for the loss.

    With ``boxes`` (per sample, (k, 4) YOLO boxes on the canvas, k may be 0) the boxes move with
    the augmentation and each batch is (x, (targets, masks), w), masks the grid cells the boxes
    overlap (train.box_loss)."""
    H, W, C = spec.input_shape
    weights = sample_weights if sample_weights is not None else np.ones(len(targets), np.float32)

    def load(idx: np.ndarray, seed: np.int64):
        x = normalize(augmenter(canvases[idx], int(seed)), spec)  # grey replicated to C channels here
        return x, targets[idx], weights[idx].astype(np.float32)

    def load_boxed(idx: np.ndarray, seed: np.int64):
        assert boxes is not None and grid is not None
        imgs, moved = augmenter.with_boxes(canvases[idx], [boxes[i] for i in idx], int(seed))
        masks = np.stack([grid_mask(b, grid) for b in moved]) if len(moved) else np.zeros((0, *grid), np.float32)
        return normalize(imgs, spec), targets[idx], masks, weights[idx].astype(np.float32)

    ds = tf.data.Dataset.from_generator(
        plan.batches,
        output_signature=(tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.int64)),
    )
    # a known length: without it Keras probes the end of the first epoch of every fit() with one more
    # step, which advances the optimizer's step count (Adam's bias correction) without an update, so a
    # resumed run drifted from an uninterrupted one in the last bits
    ds = ds.apply(tf.data.experimental.assert_cardinality(plan.steps))
    t_dim = targets.shape[1]
    if boxes is None:
        ds = ds.map(
            lambda i, s: tf.numpy_function(load, [i, s], [tf.float32, tf.float32, tf.float32]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        ds = ds.map(
            lambda x, y, w: (tf.ensure_shape(x, [None, H, W, C]), tf.ensure_shape(y, [None, t_dim]), tf.ensure_shape(w, [None]))
        )
    else:
        if grid is None or len(boxes) != len(targets):
            raise ValueError("boxes need one entry per sample and the CAM grid")
        ds = ds.map(
            lambda i, s: tf.numpy_function(load_boxed, [i, s], [tf.float32, tf.float32, tf.float32, tf.float32]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        ds = ds.map(
            lambda x, y, m, w: (
                tf.ensure_shape(x, [None, H, W, C]),
                (tf.ensure_shape(y, [None, t_dim]), tf.ensure_shape(m, [None, *grid])),
                tf.ensure_shape(w, [None]),
            )
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_inputs(canvases: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Normalised model inputs for evaluation (no augmentation)."""
    return normalize(canvases, spec)
