"""`edge compress` and `edge convert`: thin commands over convert.qat and convert.tflite."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import click

from convert.tflite import FORMATS
from edge.core.report import fmt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (kill, timeout, a CI job cancelled) raises KeyboardInterrupt while a command writes,
    so the atomic writers remove their hidden .tmp files as they do on Ctrl-C; Python's default
    SIGTERM action exits at once and left them next to the output."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def format_options(command):
    """--format/-f NAME and one --NAME alias per format, both built from convert.tflite.FORMATS."""
    for f in reversed(list(FORMATS.values())):
        command = click.option(f.flag, f"as_{f.precision}", is_flag=True, help=f"Same as --format {f.precision}: {f.target}.")(
            command
        )
    return click.option(
        "-f",
        "--format",
        "fmt_name",
        type=click.Choice(list(FORMATS)),
        default=None,
        help="Export format (each also has its own flag, below).",
    )(command)


def chosen_format(fmt_name: str | None, aliases: dict[str, bool]) -> str:
    """The one format asked for; two different ones (--int8 --fp16) are a usage error."""
    asked = {name for name, on in aliases.items() if on} | ({fmt_name} if fmt_name else set())
    if len(asked) > 1:
        raise click.UsageError(f"choose one format, not {' and '.join(sorted(asked))}")
    if not asked:
        raise click.UsageError(
            f"choose a format: --format {{{','.join(FORMATS)}}} (or {', '.join(f.flag for f in FORMATS.values())})"
        )
    return asked.pop()


@click.command()
@click.argument("bundle", required=False, type=click.Path())
@click.option("--qat", is_flag=True, help="Quantization-aware fine-tuning (fake-quant ops learn int8-friendly weights).")
@click.option(
    "--prune",
    type=float,
    default=None,
    metavar="SPARSITY",
    help="Magnitude pruning to this fraction of zero weights (polynomial decay; wrappers stripped after).",
)
@click.option(
    "--data", required=True, type=click.Path(), help="Labelled images: the train split fine-tunes, val/test report before/after."
)
@click.option("--epochs", default=2, show_default=True, help="Fine-tuning epochs (QAT needs few).")
@click.option("--lr", default=1e-5, show_default=True, help="Learning rate: small, the model is already trained.")
@click.option(
    "--distill/--labels",
    default=True,
    show_default=True,
    help="Targets: the float model's own outputs (keeps its behaviour and threshold) or the hard labels.",
)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--max-per-class", type=int, default=None, help="Use at most N images per class and split (quick runs).")
@click.option("-o", "--out", required=True, type=click.Path(), help="Directory of the new bundle.")
def compress(bundle, qat, prune, data, epochs, lr, distill, batch_size, max_per_class, out) -> None:
    """Compress a model bundle (default: the embedded one) into a new bundle.

    \b
    QAT starts from activation ranges measured on real images (as int8 calibration does) and
    learns to reproduce the float model's outputs, so the int8 model it converts to stays close
    to the float one; `edge bench convert --data ...` measures that on the test split.

    \b
    Example:
      edge compress runs/default/bundle --qat --prune 0.5 --data ../shared/data/fracatlas -o runs/qat
      edge convert runs/qat --int8        # uses the ranges learned in QAT
    """
    from convert.qat import CompressConfig
    from convert.qat import compress as run

    with sigterm_as_interrupt():
        b = run(
            bundle,
            CompressConfig(
                data=data,
                out=out,
                qat=qat,
                prune=prune,
                epochs=epochs,
                lr=lr,
                distill=distill,
                batch_size=batch_size,
                max_per_class=max_per_class,
            ),
        )
    c = b.card.compression or {}
    click.echo(f"bundle: {b.path}  (sparsity {c['sparsity']:.2f}, qat {b.qat})")
    for split, after in c["metrics_after"].items():
        before = c["metrics_before"].get(split, {})
        agree = c.get("agreement_with_source", {}).get(split, {})
        click.echo(
            f"{split}: AUROC {fmt(before.get('auroc'))} -> {fmt(after.get('auroc'))}   "
            f"accuracy {fmt(before.get('accuracy'))} -> {fmt(after.get('accuracy'))}   "
            f"same decision as the source on {fmt(agree.get('agreement'))} (max |dP| {fmt(agree.get('max_abs_diff'))})"
        )


@click.command()
@click.argument("bundle", required=False, type=click.Path())
@format_options
@click.option(
    "--calib",
    type=click.Path(),
    default=None,
    help="Folder of images for int8 calibration (default: the samples kept in the bundle).",
)
@click.option("--calib-max", default=200, show_default=True, help="Use at most this many calibration images.")
@click.option(
    "--io-type",
    type=click.Choice(["uint8", "int8"]),
    default=None,
    help="int8 models: type of the input and output tensors (default: uint8; int8 with --keep-float, whose "
    "selective quantiser writes int8 only).",
)
@click.option(
    "--keep-float",
    default=None,
    metavar="auto|TENSOR,...",
    help="int8: keep layers in float. 'auto' keeps the worst layers when a probability moves more than --keep-float-tol.",
)
@click.option("--keep-float-tol", default=0.05, show_default=True, help="Largest probability change 'auto' accepts.")
@click.option("--no-debug", is_flag=True, help="Skip the per-layer int8 error table (faster).")
@click.option("-o", "--out", type=click.Path(), default=None, help="Output .tflite (default: ./<model_id>_<precision>.tflite).")
def convert(bundle, fmt_name, calib, calib_max, io_type, keep_float, keep_float_tol, no_debug, out, **aliases) -> None:
    """Convert a model bundle (default: the embedded one) to a phone-ready .tflite.

    The file carries its model spec (labels, input size, normalisation, quantisation, threshold,
    source bundle hash) as TFLite metadata; a JSON copy and a conversion report
    (<name>_report/report.md) are written next to it.

    \b
    Examples:
      edge convert --int8                          # the embedded default model
      edge convert runs/default/bundle -f fp16 -o fracture_fp16.tflite
      edge convert BUNDLE --int8 --calib ../shared/data/fracatlas/train --keep-float auto
    """
    from convert.tflite import convert_bundle

    precision = chosen_format(fmt_name, {k.removeprefix("as_"): v for k, v in aliases.items()})

    kf = None
    if keep_float:
        kf = "auto" if keep_float == "auto" else [t.strip() for t in keep_float.split(",") if t.strip()]
    with sigterm_as_interrupt():
        c = convert_bundle(
            bundle,
            precision,
            out=out,
            calib=calib,
            io_type=io_type,
            keep_float=kf,
            keep_float_tol=keep_float_tol,
            debug=not no_debug,
            calib_max=calib_max,
        )
    r = c.report
    click.echo(
        f"{c.path}: {r['size_bytes'] / 1e6:.3f} MB ({fmt(r['size_vs_float32'])}x float32 weights), "
        f"{sum(r['ops'].values())} ops, {len(r['precision_leftovers'])} left in another precision, "
        f"GPU delegate: {r['gpu']['compatible']}"
    )
    if r.get("agreement"):
        click.echo(
            f"agreement with Keras on {r['agreement']['n']} calibration images: max |dp| {r['agreement']['max_abs_diff']:.4f}"
        )
    if r.get("keep_float"):
        click.echo(f"kept in float: {', '.join(r['keep_float'])}")
    if r.get("calibration", {}) and r["calibration"].get("warning"):
        click.echo(f"warning: {r['calibration']['warning']}", err=True)
    if c.report_dir is not None:  # always written by this command (report=True)
        click.echo(f"report: {c.report_dir / 'report.md'}")
