"""`edge evaluate`."""

from __future__ import annotations

import click

from .util import echo_skipped, output_dir


@click.command()
@click.argument("bundle", required=False, type=click.Path())
@click.option(
    "--data",
    "datas",
    required=True,
    multiple=True,
    type=click.Path(),
    help="Labelled data: class folders, split folders or CSV manifest. Repeat to compare data sets (the first is the reference).",
)
@click.option("--split", default=None, help="Split to evaluate (default: test if present, else all images).")
@click.option("--metadata", type=click.Path(), help="Per-image CSV (e.g. FracAtlas metadata.csv) for subgroup metrics.")
@click.option(
    "--report", "report_dir", type=click.Path(), callback=output_dir, help="Write DIR/report.json, DIR/report.md and PNG plots."
)
@click.option("--skip-bad", is_flag=True, help="Leave unreadable images out (listed in the report).")
@click.option(
    "--against",
    "other",
    type=click.Path(),
    help="A second bundle (or `default`, `types`) scored on the same images: both reports and the paired difference.",
)
def evaluate(
    bundle: str | None,
    datas: tuple[str, ...],
    split: str | None,
    metadata: str | None,
    report_dir: str | None,
    skip_bad: bool,
    other: str | None,
) -> None:
    """Evaluate a bundle: accuracy, precision, recall, F1, AUROC with a bootstrap 95%
    interval, sensitivity/specificity at the bundle's threshold with exact 95% intervals,
    calibration (ECE), confusion matrix, and subgroup metrics from a metadata CSV.

    With several --data, each data set is reported (DIR/NAME/ with --report) and so is each
    one's gap from the first: AUROC, sensitivity and specificity differences with 95%
    bootstrap intervals (DIR/report.md, DIR/report.json).

    With --against OTHER, two models are scored on the same images (each with its own
    preprocessing) and OTHER minus BUNDLE is reported: AUROC, and sensitivity and specificity
    each at its model's own threshold (multi-class: accuracy), with paired bootstrap intervals
    and McNemar's exact test. Paired, so far narrower than comparing two separate evaluations.

    BUNDLE defaults to the embedded model.

    \b
    Example (FracAtlas test split, with the hardware shortcut checked):
      edge evaluate --data ../shared/data/fracatlas --metadata ../shared/data/fracatlas/metadata.csv \\
                    --skip-bad --report out/eval
    Two sites (e.g. FracAtlas test split against another hospital's images):
      edge evaluate --data ../shared/data/fracatlas --data other_site/ --skip-bad --report out/eval2
    A retrained model against the embedded default, on the same test images:
      edge evaluate --against runs/new/bundle --data ../shared/data/fracatlas --skip-bad --report out/ab
    """
    from edge.core.bundle import load_bundle
    from edge.core.progress import bar

    from ..evaluate import compare, evaluate_many, markdown, markdown_compare, markdown_many
    from ..evaluate import evaluate as run

    if other and len(datas) > 1:
        raise click.UsageError("--against compares two models on one data set: give one --data")
    b = load_bundle(bundle)
    b2 = load_bundle(other) if other else None
    for m in (b, b2) if b2 else (b,):
        note = m.card.extra.get("accuracy_statement")
        if note:  # a weak model's figures never travel without the accuracy measured in cross-validation
            click.echo(f"{m.model_id}, measured when trained: {note}" if b2 else f"measured when trained: {note}")
            click.echo("(evaluating on pictures it was trained on, such as its own training folder, overstates it)")
    if b2:
        rep = compare(b, b2, datas[0], split, metadata, report_dir, skip_bad, lambda it: bar(it, "evaluate"))
        click.echo(markdown_compare(rep))
        echo_skipped(rep["skipped_files"])
    elif len(datas) == 1:
        rep = run(b, datas[0], split, metadata, report_dir, skip_bad, progress=lambda it: bar(it, "evaluate"))
        click.echo(markdown(rep))
        echo_skipped(rep["skipped_files"])
    else:
        rep = evaluate_many(b, list(datas), split, metadata, report_dir, skip_bad, progress=lambda it: bar(it, "evaluate"))
        click.echo(markdown_many(rep))
        for d in rep["datasets"].values():
            echo_skipped(d["skipped_files"])
    if report_dir:
        click.echo(f"report: {report_dir}/report.md, report.json and plots")
