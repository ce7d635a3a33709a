"""One image's explanation, whatever produced it (a CAM of the Keras model, or occlusion on a
.tflite): the map over the model's input canvas and the way back to the original image.
TensorFlow-free, so the LiteRT path (edge.explain.occlusion) can build one without it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.core.preprocess import PreprocessSpec

from .mapping import to_grid, to_image


@dataclass
class Explanation:
    """One image's prediction and CAM. ``cam`` covers the model input canvas; ``grid()`` and
    ``heatmap()`` cover the original image (letterbox padding removed)."""

    method: str
    method_title: str
    target_index: int
    target_label: str
    labels: list[str]
    probabilities: np.ndarray  # K, in labels order
    cam: np.ndarray  # h x w over the model input canvas, 0..1
    image_hw: tuple[int, int]
    spec: PreprocessSpec
    timings_ms: dict[str, float] = field(default_factory=dict)

    def grid(self) -> np.ndarray:
        return to_grid(self.cam, self.image_hw, self.spec)

    def heatmap(self) -> np.ndarray:
        return to_image(self.cam, self.image_hw, self.spec)

    @property
    def predicted_label(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]
