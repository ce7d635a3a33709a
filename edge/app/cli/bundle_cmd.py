"""`edge bundle keygen|sign|verify|migrate`: signatures and card upgrades, thin over edge.core.signing."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def bundle() -> None:
    """Sign and verify model bundles and .tflite files (Ed25519); upgrade old model cards.

    \b
    Examples:
      edge bundle keygen --out keys/release          # keys/release.key (private), keys/release.pub
      edge bundle sign runs/default/bundle --key keys/release.key
      edge bundle sign fracture_int8.tflite --key keys/release.key   # writes fracture_int8.tflite.sig
      edge bundle verify runs/default/bundle --pubkey keys/release.pub
      edge serve runs/default/bundle --require-signature keys/release.pub
    """


@bundle.command()
@click.option("--out", required=True, type=click.Path(), help="Path stem: writes STEM.key (private, mode 600) and STEM.pub.")
def keygen(out) -> None:
    """Make a new Ed25519 key pair."""
    from edge.core.signing import generate_keypair

    stem = Path(out)
    kid = generate_keypair(stem.with_name(stem.name + ".key"), stem.with_name(stem.name + ".pub"))
    click.echo(f"{stem}.key (keep secret), {stem}.pub (share); key id {kid[:16]}")


@bundle.command()
@click.argument("target", type=click.Path())
@click.option("--key", required=True, type=click.Path(), help="Ed25519 private key (PEM) from `edge bundle keygen`.")
def sign(target, key) -> None:
    """Sign a bundle (signature.json inside it) or a .tflite (a .sig file next to it)."""
    from edge.core.signing import sign as run

    click.echo(f"signed: {run(target, key)}")


@bundle.command()
@click.argument("target", type=click.Path())
@click.option("--pubkey", required=True, type=click.Path(), help="Ed25519 public key (PEM).")
def verify(target, pubkey) -> None:
    """Check a bundle's or .tflite's signature; exit 2 with one line when it is missing or wrong."""
    from edge.core.signing import verify as run

    digest = run(target, pubkey)
    click.echo(f"signature OK: {target} (sha256 {digest[:16]}…)")


@bundle.command()
@click.argument("target", type=click.Path())
def migrate(target) -> None:
    """Rewrite a version-1 model card as version 2 (its hash then covers the contract too)."""
    from edge.core.bundle import migrate_bundle

    b = migrate_bundle(target)
    click.echo(f"{b.path}: card version {b.card.version}, bundle_sha256 {b.sha256[:16]}…")
