"""`edge data check`."""

from __future__ import annotations

import json
import sys

import click

from .util import output_dir


@click.group()
def data() -> None:
    """Dataset tools."""


@data.command()
@click.argument("root", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON (every bad file and duplicate pair named) instead of tables.")
@click.option("--strict", is_flag=True, help="Exit 1 if any file is unreadable or any duplicate crosses splits.")
@click.option(
    "--near-corr",
    default=0.985,
    type=click.FloatRange(0.0, 1.0),
    show_default=True,
    help="Near duplicates: 32x32 thumbnails correlated at least this much.",
)
@click.option("-o", "--out", type=click.Path(), callback=output_dir, help="Also write OUT/report.json and OUT/report.md.")
def check(root: str, as_json: bool, strict: bool, near_corr: float, out: str | None) -> None:
    """Audit a dataset before training.

    ROOT is root/<class>/*, root/<split>/<class>/* or a CSV manifest (path,label[,split]).
    Reports counts per class and split, corrupt and truncated files, exact and near
    duplicates (and those shared between splits: leakage), and image sizes and modes.

    \b
    Example:
      edge data check ../shared/data/fracatlas --strict
    """
    from edge.core.audit import audit, markdown
    from edge.core.progress import bar
    from edge.core.report import clean, write_report

    rep = audit(root, near_corr=near_corr, progress=lambda it: bar(it, "check"))
    md = markdown(rep)
    if out:
        write_report(out, rep, md)
    click.echo(json.dumps(clean(rep), indent=2) if as_json else md)
    problems = []
    if rep["unreadable"]:
        problems.append(f"{len(rep['unreadable'])} unreadable files")
    if rep["leakage"]:
        problems.append(f"{len(rep['leakage'])} duplicates across splits")
    if strict and problems:
        click.echo(f"check failed: {', '.join(problems)}", err=True)
        sys.exit(1)
