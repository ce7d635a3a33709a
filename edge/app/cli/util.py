"""Helpers shared by the CLI modules."""

from __future__ import annotations

import click

from edge.core.bundle import Bundle, is_bundle_ref, load_bundle

# option types that refuse 0 and negatives in click's own one-line usage error
COUNT = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
RATE = click.FloatRange(min=0.0, min_open=True)
PORT = click.IntRange(1, 65535)


def split_bundle_arg(args: tuple[str, ...]) -> tuple[Bundle, list[str]]:
    """`[BUNDLE] PATH...`: the first argument is a bundle if it is a bundle directory or an
    embedded bundle's name (`types`)."""
    if args and is_bundle_ref(args[0]):
        return load_bundle(args[0]), list(args[1:])
    return load_bundle(None), list(args)


def echo_skipped(skipped: list[dict]) -> None:
    """`--skip-bad`: one line per file left out, on stderr, so the results on stdout stay a table."""
    for s in skipped:
        click.echo(f"skipped {s['path']}: {s['problem']}", err=True)
    if skipped:
        click.echo(f"{len(skipped)} unreadable files were left out", err=True)


def output_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback: an output file option checked before any work (edge.core.fsutil.check_output)."""
    from edge.core.fsutil import check_output

    return None if value is None else str(check_output(value))


def output_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from edge.core.fsutil import check_output

    return None if value is None else str(check_output(value, is_dir=True))
