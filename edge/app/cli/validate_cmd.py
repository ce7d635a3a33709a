"""`edge validate`: the accuracy-drift gate. Exit 0 pass, 1 failed checks, 2 bad usage or input."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option("--full", type=click.Path(), default=None, help="Model bundle (default: the embedded one).")
@click.option(
    "--edge",
    "edge_model",
    type=click.Path(),
    default=None,
    help="The .tflite to check (default: the bundle's int8 conversion, made once and cached).",
)
@click.option("--data", required=True, type=click.Path(), help="Labelled images (class folders; a split tree uses --split).")
@click.option("--split", default=None, help="Split of a split tree (default: test).")
@click.option("--metadata", type=click.Path(), default=None, help="Per-image CSV: 0/1 columns become subgroups (e.g. hardware).")
@click.option(
    "--device-report",
    type=click.Path(),
    default=None,
    help="JSON from the Android app's validation mode: compare the phone's own predictions instead of running the .tflite here.",
)
@click.option("--threads", default=2, show_default=True, help="LiteRT (XNNPACK) threads.")
@click.option("--runs", default=50, show_default=True, help="Timed invokes per model after warm-up.")
@click.option("--warmup", default=5, show_default=True)
@click.option("--max-accuracy-drop", type=float, default=None, help="Largest allowed accuracy drop (full - edge).")
@click.option("--max-auroc-drop", type=float, default=None, help="Largest allowed AUROC drop.")
@click.option("--min-agreement", type=float, default=None, help="Smallest allowed top-1 agreement (0..1).")
@click.option("--max-latency-ms", type=float, default=None, help="Largest allowed median edge latency.")
@click.option("--max-size-mb", type=float, default=None, help="Largest allowed .tflite size in MiB.")
@click.option(
    "--config",
    type=click.Path(),
    default=None,
    help="TOML with [tool.edge.validate] (default: the nearest pyproject.toml). Flags override it.",
)
@click.option(
    "--require-signature",
    type=click.Path(),
    default=None,
    metavar="PUB",
    help="Refuse a bundle or .tflite not signed with this Ed25519 public key (edge bundle sign).",
)
@click.option("--report", "report_dir", type=click.Path(), default=None, help="Write report.json, report.md and plots here.")
def validate(
    full,
    edge_model,
    data,
    split,
    metadata,
    device_report,
    threads,
    runs,
    warmup,
    max_accuracy_drop,
    max_auroc_drop,
    min_agreement,
    max_latency_ms,
    max_size_mb,
    config,
    require_signature,
    report_dir,
) -> None:
    """Check that the phone model still says what the full model says, fast enough.

    \b
    Exit codes: 0 all checks hold; 1 a check failed (each named), including a .tflite whose
    threshold, labels, positive label or preprocessing differ from the bundle's; 2 bad usage or input.
    Thresholds come from [tool.edge.validate] in pyproject.toml; flags override them.
    \b
    Examples:
      edge validate --data ../shared/data/fracatlas --report gate/
      edge validate --full runs/default/bundle --edge fracture_int8.tflite --data DIR --max-auroc-drop 0.005
      edge validate --full BUNDLE --device-report phone.json --data DIR
    """
    from ..validation import validate as run

    overrides = {
        "max_accuracy_drop": max_accuracy_drop,
        "max_auroc_drop": max_auroc_drop,
        "min_agreement": min_agreement,
        "max_latency_ms": max_latency_ms,
        "max_size_mb": max_size_mb,
    }
    r = run(
        full=full,
        edge=edge_model,
        data=data,
        split=split,
        metadata=metadata,
        threads=threads,
        runs=runs,
        warmup=warmup,
        thresholds=overrides,
        device_report=device_report,
        report_dir=report_dir,
        config=config,
        require_signature=require_signature,
    )
    f, e = r["full"], r["edge"]
    click.echo(
        f"{r['data']['n']} images; full AUROC {_f(f['auroc'])} accuracy {_f(f['accuracy'])}; "
        f"edge AUROC {_f(e['auroc'])} accuracy {_f(e['accuracy'])}; agreement {r['agreement']:.2%}; "
        f"edge p50 {_f(r['latency_ms']['edge']['p50'], 2)} ms ({r['latency_ms']['source']})"
    )
    if report_dir:
        click.echo(f"report: {report_dir}/report.md")
    if r["passed"]:
        click.echo("PASSED: all checks hold")
        return
    click.echo("FAILED:", err=True)
    for msg in r["failures"]:
        click.echo(f"  - {msg}", err=True)
    sys.exit(1)


def _f(v, d: int = 4) -> str:
    return "–" if v is None else f"{v:.{d}f}"
