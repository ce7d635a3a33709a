"""Running a bundle's Keras model on files: the one path used by predict, evaluate and the demo."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .bundle import Bundle, positive_column
from .errors import ImageReadError
from .imageio import read_image
from .preprocess import PreprocessSpec, letterbox_u8, normalize


@dataclass
class Prediction:
    source: str  # path, or path#frame for multi-frame DICOM
    probabilities: dict[str, float] | None
    label: str | None
    positive_probability: float | None
    decision: bool | None
    error: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "label": self.label,
            "positive_probability": self.positive_probability,
            "decision": self.decision,
            "probabilities": self.probabilities,
            "error": self.error,
        }


def decode_frames(path: Path, spec: PreprocessSpec) -> list[tuple[str, np.ndarray]]:
    """Letterboxed canvases for a file; one per frame for multi-frame DICOM (CT/MRI series)."""
    first = read_image(path)
    if first.frames <= 1:
        return [(str(path), letterbox_u8(first.pixels, spec))]
    return [(f"{path}#{i}", letterbox_u8(read_image(path, frame=i).pixels, spec)) for i in range(first.frames)]


class Decides(Protocol):
    """What a decision needs: a Bundle, an EdgeModel (its embedded spec) or a card's contract."""

    # read-only: a Bundle exposes these as properties
    @property
    def task(self) -> str: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def positive_label(self) -> str | None: ...
    @property
    def threshold(self) -> float: ...


def decisions(model: Decides, probs: np.ndarray) -> np.ndarray:
    """The one decision rule: index of the decided label per row of N x K probabilities.

    Binary: the positive label when P(positive) >= the model's threshold. Multi-class: arg-max."""
    probs = np.asarray(probs).reshape(len(probs), -1)
    if model.task == "binary":
        pi = positive_column(model.labels, model.positive_label)
        return np.where(probs[:, pi] >= model.threshold, pi, 1 - pi)
    return probs.argmax(axis=1)


def decide(model: Decides, probs: np.ndarray) -> tuple[str, float | None, bool | None]:
    """(label, P(positive) or None, decision or None) for one probability row."""
    idx = int(decisions(model, np.asarray(probs)[None])[0])
    label = list(model.labels)[idx]
    if model.task == "binary":
        return label, float(probs[positive_column(model.labels, model.positive_label)]), label == model.positive_label
    return label, None, None


def predict_files(
    bundle: Bundle,
    paths: Sequence[Path],
    skip_bad: bool = False,
    batch_size: int = 32,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[Prediction]:
    spec = bundle.spec
    out: list[Prediction] = []
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        x = normalize(np.stack([c for _, c in pending]), spec)
        probs = bundle.predict_proba(x, batch_size=batch_size)
        for (src, _), row in zip(pending, probs, strict=True):
            label, p, dec = decide(bundle, row)
            out.append(Prediction(src, {lbl: float(v) for lbl, v in zip(bundle.labels, row, strict=True)}, label, p, dec))
        pending.clear()

    for path in progress(paths) if progress else paths:
        try:
            pending += decode_frames(Path(path), spec)
        except ImageReadError as e:
            if not skip_bad:
                raise
            flush()
            out.append(Prediction(str(path), None, None, None, None, e.message))
        if len(pending) >= batch_size:
            flush()
    flush()
    return out
