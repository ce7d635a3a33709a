"""The model bundle: the one format every stage reads and writes.

A bundle is a directory::

    model_card.json    everything about the model, including the SHA-256 of every other file
    model.h5           the Keras (tf-keras) model, without optimizer state
    calibration.npz    letterboxed uint8 samples for int8 calibration (optional)
    ...                plots, logs and reports the producing stage chose to keep

``model_card.json`` is the single description (edge.core.card.ModelCard): the contract
(architecture, task, labels, the preprocessing spec, the operating threshold...) and the
record (training configuration, data fingerprint, metrics, compression history).
``bundle_sha256`` is a hash over the files' hashes and the contract, so a converted .tflite
can name exactly the bundle it came from, and editing a decision in the JSON is refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import card as card_mod
from .card import ModelCard
from .errors import BundleError
from .fsutil import atomic_dir, sha256_file, write_json
from .preprocess import PreprocessSpec

CARD = "model_card.json"
MODEL_FILE = "model.h5"  # HDF5 weights of the graph the card's architecture rebuilds (never deserialised as a model)
CALIB_FILE = "calibration.npz"
FORMAT = card_mod.FORMAT
VERSION = card_mod.VERSION
DEFAULT_BUNDLE = Path(__file__).parent.parent / "assets" / "default_bundle"
TYPES_BUNDLE = Path(__file__).parent.parent / "assets" / "types_bundle"
EMBEDDED_NAMES = ("default", "types")  # bundles shipped inside the package, addressable by name


def embedded_bundles() -> dict[str, Path]:
    """Name -> directory of the embedded bundles (read at call time, so tests can point them elsewhere)."""
    return {"default": DEFAULT_BUNDLE, "types": TYPES_BUNDLE}


SAMPLES_DIR = Path(__file__).parent.parent / "assets" / "samples"


@dataclass
class Bundle:
    path: Path
    card: ModelCard
    _model: Any = field(default=None, repr=False)

    # --- what every stage needs (read through the card's contract) -----------------------
    @property
    def spec(self) -> PreprocessSpec:
        return self.card.spec

    @property
    def labels(self) -> list[str]:
        return self.card.labels

    @property
    def task(self) -> str:
        return self.card.task

    @property
    def positive_label(self) -> str | None:
        return self.card.positive_label

    @property
    def threshold(self) -> float:
        return self.card.threshold

    @property
    def model_id(self) -> str:
        return self.card.model_id

    @property
    def sha256(self) -> str:
        return self.card.bundle_sha256

    @property
    def arch(self) -> str:
        return self.card.arch

    @property
    def qat(self) -> bool:
        return self.card.qat

    def load_model(self) -> Any:  # a keras.Model
        """The Keras model, loaded once: the card's architecture rebuilt, then weights only (see weights.py)."""
        if self._model is None:
            from .weights import load_weights_only

            self._model = load_weights_only(self.card, self.path / MODEL_FILE)
        return self._model

    def calibration_canvases(self) -> np.ndarray | None:
        p = self.path / CALIB_FILE
        if CALIB_FILE not in self.card.files or not p.exists():  # an unlisted file is not part of the bundle
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
        h, w = self.spec.size  # (height, width)
        return f"{self.model_id} ({self.arch}, {self.task}, {len(self.labels)} classes, {h}x{w}x{self.spec.channels})"


def positive_column(labels: Sequence[str], positive: str | None) -> int:
    """Column of a binary model's positive label (the card's checks put it among the labels)."""
    if positive is None:
        raise BundleError(f"a binary model needs a positive label (labels {list(labels)})")
    return list(labels).index(positive)


def to_probabilities(raw: np.ndarray, task: str, labels: list[str], positive: str | None) -> np.ndarray:
    """Model outputs -> N x K probabilities in ``labels`` order.

    Binary models have one sigmoid output, P(positive); multi-class ones a softmax row."""
    raw = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
    if task != "binary":
        return raw
    out = np.empty((len(raw), 2))
    pi = positive_column(labels, positive)
    out[:, pi], out[:, 1 - pi] = raw[:, 0], 1.0 - raw[:, 0]
    return out


def save_bundle(
    dest: str | Path, model: Any, card: ModelCard, extra: dict[str, Any] | None = None, calibration: np.ndarray | None = None
) -> Bundle:
    """Write a complete bundle atomically: weights, calibration samples, extra files, card with hashes.

    ``extra`` maps file names to bytes, str, or an existing Path to copy."""
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        with warnings.catch_warnings():  # HDF5 is deliberate (see MODEL_FILE); silence the "legacy" notice
            warnings.simplefilter("ignore", UserWarning)
            model.save(tmp / MODEL_FILE, include_optimizer=False)
        if card.contract.backbone:  # a named backbone: store the head and the layers training changed
            from .weights import keep_changed_only

            keep_changed_only(model, card.contract, tmp / MODEL_FILE)
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
        full = replace(
            card,
            version=VERSION,
            files=files,
            created=card.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )
        full.contract.check(tmp / CARD)
        full.bundle_sha256 = full.content_hash()
        write_json(tmp / CARD, full.to_dict())
    return load_bundle(dest)


def resolve_bundle(ref: str | Path | None) -> Path:
    """The one rule for a BUNDLE argument: None is the embedded default, an embedded name
    (``default``, ``types``) is that bundle unless a file or folder of that name exists here
    (a path the user typed keeps its meaning), anything else is a path."""
    if ref is None:
        return DEFAULT_BUNDLE
    name = str(ref)
    if name in EMBEDDED_NAMES and not Path(name).exists():
        return embedded_bundles()[name]
    return Path(ref)


def is_bundle_ref(ref: str | Path) -> bool:
    """An embedded bundle's name or a directory holding a model card (`[BUNDLE] PATH...` arguments)."""
    return (resolve_bundle(ref) / CARD).is_file()


def read_card(path: Path) -> ModelCard:
    """The card of the bundle at ``path``, parsed and checked (files not yet verified)."""
    card_path = path / CARD
    if not path.is_dir() or not card_path.is_file():
        embedded = {v: k for k, v in embedded_bundles().items()}
        if path in embedded:
            raise BundleError(f"the embedded '{embedded[path]}' bundle is missing from this installation", path)
        raise BundleError(f"not a model bundle (no {CARD})", path, "pass a directory written by `edge train` or `edge compress`")
    try:
        raw = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"model card is not valid JSON ({getattr(e, 'msg', e)})", card_path) from None
    return ModelCard.from_dict(raw, card_path)


def load_bundle(path: str | Path | None = None, verify: bool = True) -> Bundle:
    """Open a bundle (None: the embedded default; an embedded name, see ``resolve_bundle``) and
    check its files and contract against the hash."""
    path = resolve_bundle(path)
    card = read_card(path)
    if verify:
        verify_files(path, card)
    return Bundle(path, card)


def verify_files(path: Path, card: ModelCard) -> None:
    """Every listed file matches its hash, and bundle_sha256 covers the file hashes and the contract."""
    if MODEL_FILE not in card.files:
        raise BundleError(f"model card lists no {MODEL_FILE}", path / CARD)
    for name, digest in card.files.items():
        f = path / name
        if not f.resolve().is_relative_to(path.resolve()):
            raise BundleError("file listed in the model card lies outside the bundle", f)
        if not f.is_file():
            raise BundleError("file listed in the model card is missing", f)
        if sha256_file(f) != digest:
            raise BundleError(
                "SHA-256 does not match the model card (file changed or damaged)", f, "restore the file or re-create the bundle"
            )
    if card_mod.expected_hash(card) != card.bundle_sha256:
        raise BundleError(
            "bundle_sha256 does not match the files and the contract (threshold, labels, preprocessing...) in the model card",
            path / CARD,
            "restore the card or re-create the bundle",
        )


def update_card(bundle: Bundle, **fields: Any) -> Bundle:
    """Replace record fields (metrics, notes...); the contract and the hashes stay as they are."""
    card = bundle.card.with_record(**fields)
    write_json(bundle.path / CARD, card.to_dict())
    return Bundle(bundle.path, card, bundle._model)


def migrate_bundle(path: str | Path) -> Bundle:
    """Rewrite a version-1 card as version 2 (files untouched; the new hash covers the contract)."""
    path = Path(path)
    old = load_bundle(path)
    if old.card.version >= VERSION:
        return old
    write_json(path / CARD, card_mod.migrate(old.card).to_dict())
    return load_bundle(path)
