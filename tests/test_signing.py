"""Signed bundles and .tflite files: keys the tests generate, every way a signature can be missing or wrong."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.app.cli import main
from edge.core.bundle import CARD, DEFAULT_BUNDLE, load_bundle
from edge.core.card import content_hash
from edge.core.errors import BundleError
from edge.core.signing import BUNDLE_SIG, SignatureError, generate_keypair, require_signed, sign, verify


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture()
def keys(tmp_path) -> tuple[Path, Path, Path]:
    """(private, public, another public key)."""
    generate_keypair(tmp_path / "k.key", tmp_path / "k.pub")
    generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    return tmp_path / "k.key", tmp_path / "k.pub", tmp_path / "other.pub"


@pytest.fixture()
def bundle_copy(tmp_path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, dest)
    return dest


def test_cli_keygen_sign_verify(tmp_path, bundle_copy):
    code, out = run("bundle", "keygen", "--out", tmp_path / "rel")
    assert code == 0 and (tmp_path / "rel.key").stat().st_mode & 0o077 == 0, out
    code, out = run("bundle", "sign", bundle_copy, "--key", tmp_path / "rel.key")
    assert code == 0 and (bundle_copy / BUNDLE_SIG).is_file(), out
    code, out = run("bundle", "verify", bundle_copy, "--pubkey", tmp_path / "rel.pub")
    assert code == 0 and "signature OK" in out
    code, out = run("bundle", "keygen", "--out", tmp_path / "rel")
    assert code == 2 and "refusing to overwrite" in out


def test_signature_covers_the_contract_even_when_hashes_are_rewritten(keys, bundle_copy):
    key, pub, _ = keys
    sign(bundle_copy, key)
    assert verify(bundle_copy, pub) == load_bundle(bundle_copy).sha256
    # an attacker raises the threshold and rewrites bundle_sha256 so the hash check passes
    card = json.loads((bundle_copy / CARD).read_text())
    card["threshold"] = 0.94
    b = load_bundle(bundle_copy, verify=False)
    from dataclasses import replace

    card["bundle_sha256"] = content_hash(card["files"], replace(b.card.contract, threshold=0.94))
    (bundle_copy / CARD).write_text(json.dumps(card))
    assert load_bundle(bundle_copy).threshold == 0.94  # the hash alone cannot tell
    with pytest.raises(SignatureError, match="does not match the bundle's content"):
        verify(bundle_copy, pub)


def test_changed_file_after_signing(keys, bundle_copy):
    key, pub, _ = keys
    sign(bundle_copy, key)
    f = bundle_copy / "curves.png"
    f.write_bytes(f.read_bytes() + b"\0")
    with pytest.raises(BundleError, match="SHA-256 does not match"):
        verify(bundle_copy, pub)


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda d: d.update(signature=base64.b64encode(bytes(64)).decode()), "does not match"),
        (lambda d: d.update(signature="not base64!"), "malformed"),
        (lambda d: d.update(kind="tflite"), "not a fracture-edge Ed25519 signature"),
        (lambda d: d.pop("signature"), "malformed"),
    ],
)
def test_damaged_signature_file(keys, bundle_copy, damage, words):
    key, pub, _ = keys
    sig = sign(bundle_copy, key)
    doc = json.loads(sig.read_text())
    damage(doc)
    sig.write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match=words):
        verify(bundle_copy, pub)


def test_unsigned_and_wrong_key(keys, bundle_copy):
    key, pub, other = keys
    with pytest.raises(SignatureError, match="bundle is not signed"):
        verify(bundle_copy, pub)
    sign(bundle_copy, key)
    with pytest.raises(SignatureError, match="another key"):
        verify(bundle_copy, other)
    with pytest.raises(SignatureError, match="not a PEM public key"):
        verify(bundle_copy, key.with_suffix(".key"))  # the private key is not a public key
    require_signed(load_bundle(bundle_copy), None)  # no key asked: nothing checked
    require_signed(load_bundle(bundle_copy), pub)


def test_tflite_detached_signature(keys, conv_int8, tmp_path):
    key, pub, other = keys
    f = tmp_path / "m.tflite"
    shutil.copy(conv_int8.path, f)
    with pytest.raises(SignatureError, match="file is not signed"):
        verify(f, pub)
    assert sign(f, key) == tmp_path / "m.tflite.sig"
    verify(f, pub)
    with pytest.raises(SignatureError, match="another key"):
        verify(f, other)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="does not match the tflite's content"):
        verify(f, pub)


def test_serve_refuses_an_unsigned_bundle(keys, bundle_copy):
    _, pub, _ = keys
    code, out = run("serve", bundle_copy, "--no-auth", "--require-signature", pub)
    assert code == 2 and "bundle is not signed" in out and "Traceback" not in out
