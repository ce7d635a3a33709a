"""`edge predict`."""

from __future__ import annotations

import csv
import io
import sys

import click

from .util import COUNT, output_file, split_bundle_arg


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="[BUNDLE] PATH...")
@click.option(
    "--csv", "csv_out", type=click.Path(), callback=output_file, help="Also write the table as CSV (written atomically)."
)
@click.option("--skip-bad", is_flag=True, help="List unreadable files in the output instead of stopping at the first.")
@click.option("--batch-size", default=32, type=COUNT, show_default=True)
def predict(args: tuple[str, ...], csv_out: str | None, skip_bad: bool, batch_size: int) -> None:
    """Classify radiographs (PNG, JPEG, DICOM; files or folders).

    BUNDLE is a model bundle directory; leave it out to use the embedded default.
    Multi-frame DICOM (CT, MRI) gives one row per frame. The decision applies the
    bundle's operating threshold to P(positive).

    \b
    Examples:
      edge predict edge/assets/samples
      edge predict runs/default/bundle scan.dcm xray.png --csv out.csv
    """
    from edge.core.data import list_images
    from edge.core.fsutil import write_text
    from edge.core.inference import predict_files
    from edge.core.progress import bar
    from edge.core.report import table

    bundle, paths = split_bundle_arg(args)
    files = list_images(paths)
    preds = predict_files(
        bundle, files, skip_bad=skip_bad, batch_size=batch_size, progress=lambda it: bar(it, "predict", len(files))
    )
    labels = bundle.labels
    header = (
        ["source", "prediction", *[f"p({lbl})" for lbl in labels]] + (["decision"] if bundle.task == "binary" else []) + ["error"]
    )
    rows = []
    for p in preds:
        probs = [p.probabilities[lbl] if p.probabilities else None for lbl in labels]
        dec = [("" if p.decision is None else ("positive" if p.decision else "negative"))] if bundle.task == "binary" else []
        rows.append([p.source, p.label or "", *probs, *dec, p.error or ""])
    click.echo(
        f"model: {bundle.summary()}; threshold {bundle.threshold:.3f} on p({bundle.positive_label})"
        if bundle.task == "binary"
        else f"model: {bundle.summary()}"
    )
    note = bundle.card.extra.get("accuracy_statement")
    if note:  # a weak model's answers never travel without its measured accuracy
        click.echo(f"accuracy: {note}")
    click.echo(table(header, rows))
    if csv_out:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows([[("" if v is None else (f"{v:.6f}" if isinstance(v, float) else v)) for v in r] for r in rows])
        write_text(csv_out, buf.getvalue())
    if any(p.error for p in preds):
        click.echo(f"{sum(1 for p in preds if p.error)} files could not be read (listed above)", err=True)
        sys.exit(1)
