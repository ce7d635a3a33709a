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
def evaluate(
    bundle: str | None, datas: tuple[str, ...], split: str | None, metadata: str | None, report_dir: str | None, skip_bad: bool
) -> None:
    """Evaluate a bundle: accuracy, precision, recall, F1, AUROC with a bootstrap 95%
    interval, sensitivity/specificity at the bundle's threshold with exact 95% intervals,
    calibration (ECE), confusion matrix, and subgroup metrics from a metadata CSV.

    With several --data, each data set is reported (DIR/NAME/ with --report) and so is each
    one's gap from the first: AUROC, sensitivity and specificity differences with 95%
    bootstrap intervals (DIR/report.md, DIR/report.json).

    BUNDLE defaults to the embedded model.

    \b
    Example (FracAtlas test split, with the hardware shortcut checked):
      edge evaluate --data ../shared/data/fracatlas --metadata ../shared/data/fracatlas/metadata.csv \\
                    --skip-bad --report out/eval
    Two sites (e.g. FracAtlas test split against another hospital's images):
      edge evaluate --data ../shared/data/fracatlas --data other_site/ --skip-bad --report out/eval2
    """
    from edge.core.bundle import load_bundle
    from edge.core.progress import bar

    from ..evaluate import evaluate as run
    from ..evaluate import evaluate_many, markdown, markdown_many

    b = load_bundle(bundle)
    note = b.card.extra.get("accuracy_statement")
    if note:  # a weak model's figures never travel without the accuracy measured in cross-validation
        click.echo(f"measured when trained: {note}")
        click.echo("(evaluating on pictures it was trained on, such as its own training folder, overstates it)")
    if len(datas) == 1:
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
