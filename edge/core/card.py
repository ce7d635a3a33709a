"""The model card (``model_card.json``): the one module that writes, reads, checks and migrates it.

A card has two parts:

* the **contract**: what changes a decision or how the graph is rebuilt (architecture, task,
  labels, positive label, threshold and how it was calibrated, preprocessing, input and output
  tensors, whether the graph is quantization-aware). It is hashed into ``bundle_sha256``
  together with the files' hashes, so editing the threshold or the std in the JSON is refused;
* the **record**: model id, metrics, training configuration, data fingerprint, compression
  history, notes. It may be updated (``update_card``) without touching the hash.

On disk the card stays one flat JSON object (every field at the top level, as version 1 wrote
it), so readers of the JSON (the server's /v1/model, people) see the same keys.

Versions: 1 hashed only the files (``bundle_sha256 = H(files)``); 2 hashes the files and the
contract. A version-1 card is migrated in memory when read (its hash is checked the old way);
``migrate`` rewrites one on disk.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import BundleError
from .preprocess import PreprocessSpec

FORMAT = "fracture-edge/bundle"
VERSION = 2
TASKS = ("binary", "multiclass")
CONTRACT_KEYS = (
    "arch",
    "task",
    "labels",
    "positive_label",
    "threshold",
    "threshold_policy",
    "preprocess",
    "input",
    "output",
    "qat",
)
# written only when set, so the hashes of cards without them are unchanged
OPTIONAL_CONTRACT_KEYS = ("backbone",)
_BOOKKEEPING = ("format", "version", "files", "bundle_sha256")


@dataclass(frozen=True)
class Contract:
    """Everything that decides what the model answers; hashed with the files."""

    arch: str
    task: str
    labels: tuple[str, ...]
    positive_label: str | None
    threshold: float
    preprocess: PreprocessSpec
    input: dict[str, Any]  # {"shape": [H, W, C], "dtype": "float32"}
    output: dict[str, Any]  # {"units": N, "activation": "sigmoid" | "softmax"}
    threshold_policy: dict[str, Any] | None = None  # how the threshold was calibrated (e.g. target sensitivity on val)
    qat: bool = False  # the graph carries tfmot quantize wrappers
    # the ImageNet weights named instead of stored: {"weights": "imagenet", "arch", "sha256" of the pinned
    # checkpoint}; model.h5 then holds the head and the layers training changed, every other layer has
    # the named weights (edge.core.pretrained, edge.core.weights.keep_changed_only)
    backbone: dict[str, Any] | None = None

    @classmethod
    def create(
        cls,
        arch: str,
        task: str,
        labels: list[str] | tuple[str, ...],
        positive_label: str | None,
        threshold: float,
        preprocess: PreprocessSpec,
        threshold_policy: dict[str, Any] | None = None,
        qat: bool = False,
        backbone: dict[str, Any] | None = None,
    ) -> Contract:
        """A contract whose input and output tensors follow from the preprocessing and the labels."""
        units = 1 if task == "binary" else len(labels)
        return cls(
            arch,
            task,
            tuple(labels),
            positive_label if task == "binary" else None,
            float(threshold),
            preprocess,
            {"shape": list(preprocess.input_shape), "dtype": "float32"},
            {"units": units, "activation": "sigmoid" if task == "binary" else "softmax"},
            threshold_policy,
            qat,
            dict(backbone) if backbone else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "task": self.task,
            "labels": list(self.labels),
            "positive_label": self.positive_label,
            "threshold": self.threshold,
            "threshold_policy": self.threshold_policy,
            "preprocess": self.preprocess.to_dict(),
            "input": dict(self.input),
            "output": dict(self.output),
            "qat": self.qat,
            **({"backbone": dict(self.backbone)} if self.backbone else {}),
        }

    def canonical(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def check(self, where: Any) -> None:
        """The contract is consistent with itself: one BundleError sentence for the first problem."""
        problems = _contract_problems(self)
        if problems:
            raise BundleError(f"model card: {problems[0]}", where)


def _contract_problems(c: Contract) -> list[str]:
    out = []
    if c.task not in TASKS:
        out.append(f"task must be one of {', '.join(TASKS)}, not {c.task!r}")
    if len(c.labels) < 2 or len(set(c.labels)) != len(c.labels) or not all(isinstance(x, str) and x for x in c.labels):
        out.append(f"labels must be two or more distinct names, not {list(c.labels)}")
    if c.task == "binary" and (len(c.labels) != 2 or c.positive_label not in c.labels):
        out.append(f"positive_label {c.positive_label!r} is not one of the two labels {list(c.labels)}")
    if not (isinstance(c.threshold, float) and math.isfinite(c.threshold) and 0.0 <= c.threshold <= 1.0):
        out.append(f"threshold must be a probability in 0..1, not {c.threshold!r}")
    if list(c.input.get("shape", [])) != list(c.preprocess.input_shape) or c.input.get("dtype") != "float32":
        out.append(f"input {c.input} does not match the preprocessing's {list(c.preprocess.input_shape)} float32")
    want = Contract.create(c.arch, c.task, c.labels, c.positive_label, 0.5, c.preprocess).output
    if dict(c.output) != want:
        out.append(f"output {c.output} does not match the task and labels (expected {want})")
    if c.backbone is not None:
        b = c.backbone
        sha = b.get("sha256") if isinstance(b, dict) else None
        if not isinstance(b, dict) or b.get("weights") != "imagenet" or b.get("arch") != c.arch or not _is_sha256(sha):
            out.append(f"backbone must be {{weights: imagenet, arch: {c.arch!r}, sha256: 64 hex digits}}, not {b!r}")
        elif c.qat:
            out.append("a quantization-aware graph stores its backbone; it cannot name one")
    return out


def _is_sha256(s: Any) -> bool:
    return isinstance(s, str) and len(s) == 64 and all(ch in "0123456789abcdef" for ch in s)


@dataclass
class ModelCard:
    """The typed card. ``files`` and ``bundle_sha256`` are filled in by ``edge.core.bundle.save_bundle``."""

    contract: Contract
    model_id: str
    gradcam_layer: str | None = None
    params: int | None = None
    created: str | None = None
    training: dict[str, Any] | None = None
    imbalance: str | None = None
    data: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    compression: dict[str, Any] | None = None  # what `edge compress` did (record only; qat is in the contract)
    # temperature scaling: T and ECE/Brier before and after. A record, not contract: T is already
    # folded into the weights (hashed as model.h5), so no reader may apply it a second time.
    calibration: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields this toolkit does not know, kept as written
    files: dict[str, str] = field(default_factory=dict)
    bundle_sha256: str = ""
    version: int = VERSION

    # --- the contract, read through -----------------------------------------------------------
    arch = property(lambda self: self.contract.arch)
    task = property(lambda self: self.contract.task)
    labels = property(lambda self: list(self.contract.labels))
    positive_label = property(lambda self: self.contract.positive_label)
    threshold = property(lambda self: self.contract.threshold)
    spec = property(lambda self: self.contract.preprocess)
    qat = property(lambda self: self.contract.qat)

    def content_hash(self) -> str:
        """The hash a version-2 card must carry: the files' hashes and the contract, canonical JSON."""
        return content_hash(self.files, self.contract)

    def with_record(self, **changes: Any) -> ModelCard:
        """A copy with record fields replaced; contract fields are refused (they would change the hash)."""
        bad = [k for k in changes if k in CONTRACT_KEYS + OPTIONAL_CONTRACT_KEYS or k in _BOOKKEEPING or k == "contract"]
        if bad:
            raise BundleError(
                f"{', '.join(bad)} belong to the model's contract or hashes and cannot be updated in place",
                hint="re-create the bundle (train, compress) to change them",
            )
        known = {f.name for f in fields(self)}
        extra = {**self.extra, **{k: v for k, v in changes.items() if k not in known}}
        return replace(self, extra=extra, **{k: v for k, v in changes.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON object written to model_card.json."""
        d: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "model_id": self.model_id,
            **self.contract.to_dict(),
            "gradcam_layer": self.gradcam_layer,
            "params": self.params,
            "created": self.created,
            "training": self.training,
            "imbalance": self.imbalance,
            "data": self.data,
            "metrics": self.metrics,
            "compression": {**self.compression, "qat": self.qat} if self.compression else None,
        }
        if self.calibration is not None:  # absent, not null, on uncalibrated cards (as before)
            d["calibration"] = self.calibration
        d.update(self.extra)
        d["files"] = dict(self.files)
        d["bundle_sha256"] = self.bundle_sha256
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: Any) -> ModelCard:
        """Read (and migrate, for version 1) a card; BundleError naming ``where`` when it is malformed."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BundleError(
                f"not a fracture-edge bundle card (format={d.get('format') if isinstance(d, dict) else None!r})", where
            )
        version = d.get("version")
        if not isinstance(version, int) or version < 1:
            raise BundleError(f"model card version must be a positive integer, not {version!r}", where)
        if version > VERSION:
            raise BundleError(f"bundle version {version} is newer than this toolkit understands", where, "upgrade fracture-edge")
        for key in ("labels", "task", "preprocess", "files", "bundle_sha256"):
            if key not in d:
                raise BundleError(f"model card lacks '{key}'", where)
        contract = _contract_from(d, version, where)
        contract.check(where)
        known = {f.name for f in fields(cls)} | set(CONTRACT_KEYS) | set(OPTIONAL_CONTRACT_KEYS) | set(_BOOKKEEPING)
        comp = d.get("compression")
        return cls(
            contract=contract,
            model_id=str(d.get("model_id") or "model"),
            gradcam_layer=d.get("gradcam_layer"),
            params=d.get("params"),
            created=d.get("created"),
            training=d.get("training"),
            imbalance=d.get("imbalance"),
            data=d.get("data"),
            metrics=d.get("metrics") or {},
            compression={k: v for k, v in comp.items() if k != "qat"} if isinstance(comp, dict) else None,
            calibration=d.get("calibration") if isinstance(d.get("calibration"), dict) else None,
            extra={k: v for k, v in d.items() if k not in known},
            files=dict(d["files"]),
            bundle_sha256=str(d["bundle_sha256"]),
            version=version,
        )


def _contract_from(d: dict[str, Any], version: int, where: Any) -> Contract:
    try:
        spec = PreprocessSpec.from_dict(d["preprocess"])
    except (TypeError, ValueError, AttributeError) as e:
        raise BundleError(f"model card: preprocess is not a valid spec ({e})", where) from None
    try:
        threshold: Any = float(d.get("threshold", 0.5)) if version == 1 else d.get("threshold")  # v2: checked below
        if version == 1:  # migrate: version 1 kept QAT under compression and wrote no input/output
            comp = d.get("compression") or {}
            return Contract.create(
                str(d.get("arch", "unknown")),
                d["task"],
                d["labels"],
                d.get("positive_label"),
                threshold,
                spec,
                d.get("threshold_policy"),
                bool(comp.get("qat")),
                d.get("backbone"),  # never written by version 1; kept if a converted card carries it
            )
        missing = [k for k in CONTRACT_KEYS if k not in d]
        if missing:
            raise BundleError(f"model card lacks {', '.join(missing)}", where)
        return Contract(
            d["arch"],
            d["task"],
            tuple(d["labels"]),
            d["positive_label"],
            float(threshold) if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else threshold,
            spec,
            dict(d["input"]),
            dict(d["output"]),
            d["threshold_policy"],
            bool(d["qat"]),
            d.get("backbone"),
        )
    except (TypeError, ValueError) as e:
        raise BundleError(f"model card: malformed contract field ({e})", where) from None


def content_hash(files: dict[str, str], contract: Contract) -> str:
    body = {"files": dict(sorted(files.items())), "contract": contract.to_dict()}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def files_hash_v1(files: dict[str, str]) -> str:
    """Version 1's bundle hash: the files only (kept to verify old bundles)."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def expected_hash(card: ModelCard) -> str:
    return files_hash_v1(card.files) if card.version == 1 else card.content_hash()


def migrate(card: ModelCard) -> ModelCard:
    """The same card as version 2: the hash now covers the contract too (files unchanged)."""
    out = replace(card, version=VERSION)
    out.bundle_sha256 = out.content_hash()
    return out
