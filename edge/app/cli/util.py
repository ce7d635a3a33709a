"""Helpers shared by the CLI modules."""

from __future__ import annotations

from pathlib import Path

from edge.core.bundle import CARD, Bundle, load_bundle


def is_bundle_dir(p: str | Path) -> bool:
    return (Path(p) / CARD).is_file()


def split_bundle_arg(args: tuple[str, ...]) -> tuple[Bundle, list[str]]:
    """`[BUNDLE] PATH...`: the first argument is a bundle if it is a bundle directory."""
    if args and is_bundle_dir(args[0]):
        return load_bundle(args[0]), list(args[1:])
    return load_bundle(None), list(args)
