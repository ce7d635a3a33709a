"""Signed bundles and .tflite files (Ed25519, through the `cryptography` package).

Hashes catch accidents; an attacker rewrites them. A signature binds what a model answers to a
key: for a bundle it signs the content hash (every file's SHA-256 and the card's contract,
recomputed from the files, not read from the card), for a .tflite the file's SHA-256 (its
embedded spec carries the labels, threshold and preprocessing). The signature is a small JSON
document: ``signature.json`` inside a bundle, ``<file>.sig`` next to a .tflite.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bundle import Bundle, load_bundle
from .card import content_hash
from .errors import BundleError
from .fsutil import sha256_file, write_bytes, write_json

if TYPE_CHECKING:  # cryptography is imported lazily: only signing needs it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIG_FORMAT = "fracture-edge/signature"
SIG_VERSION = 1
BUNDLE_SIG = "signature.json"
_DOMAIN = {"bundle": b"fracture-edge bundle v2\n", "tflite": b"fracture-edge tflite\n"}  # no signature fits both kinds


class SignatureError(BundleError):
    """A missing, malformed or wrong signature, or a key that cannot be read."""


def generate_keypair(private_path: str | Path, public_path: str | Path) -> str:
    """A new Ed25519 key pair as PEM files (the private one readable by its owner only); returns the key id."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.exists():
        raise SignatureError("refusing to overwrite an existing private key", private_path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_bytes(private_path, pem)
    os.chmod(private_path, 0o600)
    write_bytes(public_path, _public_pem(key.public_key()))
    return key_id(key.public_key())


def _public_pem(pub: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(pub: Ed25519PublicKey) -> str:
    """The SHA-256 of the raw public key: names the signer in a signature file."""
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


def _load_key(path: str | Path, private: bool) -> Any:  # the Ed25519 key, checked below
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    path = Path(path)
    kind = "private" if private else "public"
    if not path.is_file():
        raise SignatureError(f"{kind} key file not found", path)
    try:
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, None) if private else serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise SignatureError(f"not a PEM {kind} key ({str(e).splitlines()[0][:100]})", path) from None
    if not isinstance(key, Ed25519PrivateKey if private else Ed25519PublicKey):
        raise SignatureError(f"{kind} key is not an Ed25519 key", path, "make one with `edge bundle keygen`")
    return key


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    return _load_key(path, private=True)


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    return _load_key(path, private=False)


def _subject(path: Path) -> tuple[str, str, Path]:
    """(kind, digest to sign, where the signature lives) for a bundle directory or a .tflite file."""
    if path.is_dir():
        b = load_bundle(path)  # files and contract verified against the card first
        if b.card.version < 2:
            raise SignatureError(
                "a version-1 card does not cover the contract; migrate it before signing",
                path,
                "run `edge bundle migrate BUNDLE`",
            )
        return "bundle", content_hash(b.card.files, b.card.contract), path / BUNDLE_SIG
    if not path.is_file():
        raise SignatureError("no such bundle or .tflite file", path)
    return "tflite", sha256_file(path), path.with_name(path.name + ".sig")


def sign(path: str | Path, private_key: str | Path) -> Path:
    """Sign a bundle or a .tflite with an Ed25519 private key; returns the signature file."""
    key = load_private_key(private_key)
    kind, digest, sig_path = _subject(Path(path))
    sig = key.sign(_DOMAIN[kind] + digest.encode())
    write_json(
        sig_path,
        {
            "format": SIG_FORMAT,
            "version": SIG_VERSION,
            "algorithm": "ed25519",
            "kind": kind,
            "sha256": digest,
            "key_id": key_id(key.public_key()),
            "signature": base64.b64encode(sig).decode(),
        },
    )
    return sig_path


def _read_signature(sig_path: Path, kind: str, where: Path) -> dict[str, Any]:
    if not sig_path.is_file():
        raise SignatureError(
            f"{'bundle' if kind == 'bundle' else 'file'} is not signed (no {sig_path.name})",
            where,
            "sign it with `edge bundle sign`",
        )
    try:
        doc = json.loads(sig_path.read_text())
        ok = doc["format"] == SIG_FORMAT and doc["algorithm"] == "ed25519" and doc["kind"] == kind
        raw = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise SignatureError("signature file is malformed", sig_path) from None
    if not ok or len(raw) != 64:
        raise SignatureError(f"not a fracture-edge Ed25519 signature of a {kind}", sig_path)
    return {**doc, "raw": raw}


def verify(path: str | Path, public_key: str | Path) -> str:
    """Check the signature of a bundle or .tflite against a public key; returns the signed digest.

    Raises SignatureError (one line) when unsigned, signed by another key, or changed since signing."""
    from cryptography.exceptions import InvalidSignature

    path = Path(path)
    pub = load_public_key(public_key)
    kind, digest, sig_path = _subject(path)
    doc = _read_signature(sig_path, kind, path)
    if doc.get("key_id") != key_id(pub):
        raise SignatureError("signed with another key than the one given", path, "check --pubkey / --require-signature")
    try:
        pub.verify(doc["raw"], _DOMAIN[kind] + digest.encode())
    except InvalidSignature:
        raise SignatureError(f"signature does not match the {kind}'s content (changed after signing, or forged)", path) from None
    return digest


def require_signed(subject: Bundle | str | Path, public_key: str | Path | None) -> None:
    """The check `serve` and `validate` run with --require-signature (nothing when no key is given)."""
    if public_key is not None:
        verify(subject.path if isinstance(subject, Bundle) else subject, public_key)
