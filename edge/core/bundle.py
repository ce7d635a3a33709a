"""The model bundle: the one format every stage reads and writes.

A bundle is a directory::

    model_card.json    everything about the model, including the SHA-256 of every other file
    model.h5           the Keras (tf-keras) model, without optimizer state
    calibration.npz    letterboxed uint8 samples for int8 calibration (optional)
    ...                plots, logs and reports the producing stage chose to keep

``model_card.json`` is the single description: architecture, task, labels, the
preprocessing spec, the operating threshold, training configuration, data fingerprint,
metrics, compression history. ``bundle_sha256`` is a hash over the files' hashes, so a
converted .tflite can name exactly the bundle it came from.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError
from .fsutil import atomic_dir, sha256_file, write_json
from .preprocess import PreprocessSpec

CARD = "model_card.json"
MODEL_FILE = "model.h5"  # HDF5: the tf-keras format that can leave the optimizer state out
CALIB_FILE = "calibration.npz"
FORMAT = "fracture-edge/bundle"
VERSION = 1
DEFAULT_BUNDLE = Path(__file__).parent.parent / "assets" / "default_bundle"
SAMPLES_DIR = Path(__file__).parent.parent / "assets" / "samples"


def _bundle_hash(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


@dataclass
class Bundle:
    path: Path
    card: dict[str, Any]
    _model: Any = field(default=None, repr=False)

    # --- what every stage needs -------------------------------------------------------
    @property
    def spec(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.card["preprocess"])

    @property
    def labels(self) -> list[str]:
        return list(self.card["labels"])

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def positive_label(self) -> str | None:
        return self.card.get("positive_label")

    @property
    def threshold(self) -> float:
        return float(self.card.get("threshold", 0.5))

    @property
    def model_id(self) -> str:
        return self.card.get("model_id", self.path.name)

    @property
    def sha256(self) -> str:
        return self.card["bundle_sha256"]

    @property
    def arch(self) -> str:
        return self.card.get("arch", "unknown")

    def load_model(self):
        """The Keras model, loaded once (QAT bundles need tfmot's custom objects)."""
        if self._model is None:
            from ._tf import keras

            path = self.path / MODEL_FILE
            try:
                if (self.card.get("compression") or {}).get("qat"):
                    import tensorflow_model_optimization as tfmot

                    with tfmot.quantization.keras.quantize_scope():
                        self._model = keras.models.load_model(path, compile=False)
                else:
                    self._model = keras.models.load_model(path, compile=False)
            except (OSError, ValueError) as e:
                raise BundleError(f"cannot load the Keras model ({e})", path) from None
        return self._model

    def calibration_canvases(self) -> np.ndarray | None:
        p = self.path / CALIB_FILE
        if not p.exists():
            return None
        with np.load(p) as z:
            return z["canvases"]

    def positive_index(self) -> int:
        return self.labels.index(self.positive_label) if self.positive_label else 0

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        return to_probabilities(raw, self.task, self.labels, self.positive_label)

    def predict_proba(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Preprocessed float input (N x H x W x C) -> N x K probabilities."""
        model = self.load_model()
        raw = model.predict(x, batch_size=batch_size, verbose=0)
        return self.probabilities(raw)

    def summary(self) -> str:
        return f"{self.model_id} ({self.arch}, {self.task}, {len(self.labels)} classes, {self.spec.size[0]}x{self.spec.size[1]}x{self.spec.channels})"


def to_probabilities(raw: np.ndarray, task: str, labels: list[str], positive: str | None) -> np.ndarray:
    """Model outputs -> N x K probabilities in ``labels`` order.

    Binary models have one sigmoid output, P(positive); multi-class ones a softmax row."""
    raw = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
    if task != "binary":
        return raw
    out = np.empty((len(raw), 2))
    pi = labels.index(positive)
    out[:, pi], out[:, 1 - pi] = raw[:, 0], 1.0 - raw[:, 0]
    return out


def save_bundle(dest: str | Path, model, card: dict[str, Any], extra: dict[str, Any] | None = None,
                calibration: np.ndarray | None = None) -> Bundle:
    """Write a complete bundle atomically: model, calibration samples, extra files, card with hashes.

    ``extra`` maps file names to bytes, str, or an existing Path to copy."""
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        with warnings.catch_warnings():  # HDF5 is deliberate (see MODEL_FILE); silence the "legacy" notice
            warnings.simplefilter("ignore", UserWarning)
            model.save(tmp / MODEL_FILE, include_optimizer=False)
        if calibration is not None:
            np.savez_compressed(tmp / CALIB_FILE, canvases=calibration.astype(np.uint8))
        for name, content in (extra or {}).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                target.write_bytes(content.read_bytes())
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(str(content))
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != CARD}
        full = {"format": FORMAT, "version": VERSION, **card}
        full.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        full["files"] = files
        full["bundle_sha256"] = _bundle_hash(files)
        write_json(tmp / CARD, full)
    return load_bundle(dest)


def load_bundle(path: str | Path | None = None, verify: bool = True) -> Bundle:
    """Open a bundle (None: the embedded default) and check its files against their hashes."""
    path = Path(path) if path is not None else DEFAULT_BUNDLE
    card_path = path / CARD
    if not path.is_dir() or not card_path.is_file():
        if path == DEFAULT_BUNDLE:
            raise BundleError("the embedded default bundle is missing from this installation", path)
        raise BundleError(f"not a model bundle (no {CARD})", path, "pass a directory written by `edge train` or `edge compress`")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"model card is not valid JSON ({e.msg}, line {e.lineno})", card_path) from None
    if card.get("format") != FORMAT:
        raise BundleError(f"not a fracture-edge bundle card (format={card.get('format')!r})", card_path)
    if card.get("version", 0) > VERSION:
        raise BundleError(f"bundle version {card['version']} is newer than this toolkit understands", card_path, "upgrade fracture-edge")
    for key in ("labels", "task", "preprocess", "files", "bundle_sha256"):
        if key not in card:
            raise BundleError(f"model card lacks '{key}'", card_path)
    if verify:
        verify_files(path, card)
    return Bundle(path, card)


def verify_files(path: Path, card: dict[str, Any]) -> None:
    files = card["files"]
    if MODEL_FILE not in files:
        raise BundleError(f"model card lists no {MODEL_FILE}", path / CARD)
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise BundleError("file listed in the model card is missing", f)
        if sha256_file(f) != digest:
            raise BundleError("SHA-256 does not match the model card (file changed or damaged)", f,
                              "restore the file or re-create the bundle")
    if _bundle_hash(files) != card["bundle_sha256"]:
        raise BundleError("bundle_sha256 does not match the files listed", path / CARD)


def update_card(bundle: Bundle, **fields: Any) -> Bundle:
    """Add or replace card fields that are not files (e.g. evaluation metrics); hashes stay valid."""
    card = dict(bundle.card)
    card.update(fields)
    write_json(bundle.path / CARD, card)
    return Bundle(bundle.path, card, bundle._model)
