"""Running a bundle's Keras model on files: the one path used by predict, evaluate and the demo."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .errors import ImageReadError
from .imageio import read_image
from .preprocess import letterbox_u8, normalize


@dataclass
class Prediction:
    source: str  # path, or path#frame for multi-frame DICOM
    probabilities: dict[str, float] | None
    label: str | None
    positive_probability: float | None
    decision: bool | None
    error: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {"source": self.source, "label": self.label, "positive_probability": self.positive_probability,
                "decision": self.decision, "probabilities": self.probabilities, "error": self.error}


def decode_frames(path: Path, spec) -> list[tuple[str, np.ndarray]]:
    """Letterboxed canvases for a file; one per frame for multi-frame DICOM (CT/MRI series)."""
    first = read_image(path)
    if first.frames <= 1:
        return [(str(path), letterbox_u8(first.pixels, spec))]
    return [(f"{path}#{i}", letterbox_u8(read_image(path, frame=i).pixels, spec)) for i in range(first.frames)]


def decide(bundle: Bundle, probs: np.ndarray) -> tuple[str, float | None, bool | None]:
    """(label, P(positive) or None, decision or None) for one probability row."""
    if bundle.task == "binary":
        p = float(probs[bundle.positive_index()])
        decision = p >= bundle.threshold
        negative = next(lbl for lbl in bundle.labels if lbl != bundle.positive_label)
        return (bundle.positive_label if decision else negative), p, decision
    return bundle.labels[int(np.argmax(probs))], None, None


def predict_files(bundle: Bundle, paths: Sequence[Path], skip_bad: bool = False, batch_size: int = 32,
                  progress: Callable[[Iterable], Iterable] | None = None) -> list[Prediction]:
    spec = bundle.spec
    out: list[Prediction] = []
    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        x = normalize(np.stack([c for _, c in pending]), spec)
        probs = bundle.predict_proba(x, batch_size=batch_size)
        for (src, _), row in zip(pending, probs):
            label, p, dec = decide(bundle, row)
            out.append(Prediction(src, {lbl: float(v) for lbl, v in zip(bundle.labels, row)}, label, p, dec))
        pending.clear()

    for path in (progress(paths) if progress else paths):
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
