"""`edge calibrate`."""

from __future__ import annotations

import click

from .util import output_dir


@click.command()
@click.argument("bundle", required=False, type=click.Path())
@click.option("--data", required=True, type=click.Path(), help="Labelled validation data (its 'val' split if it has splits).")
@click.option("--split", default=None, help="Split to calibrate on (default: val if present, else all images).")
@click.option(
    "-o", "--out", required=True, type=click.Path(), callback=output_dir, help="Directory for the calibrated bundle (new)."
)
@click.option(
    "--target-sensitivity",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Default: the target the bundle's threshold policy recorded (else 0.90).",
)
@click.option(
    "--method",
    type=click.Choice(["platt", "temperature"]),
    default="platt",
    show_default=True,
    help="platt: logit / T + shift (binary); temperature: logit / T only. Multi-class models use temperature.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 1.0, max_open=True),
    default=0.95,
    show_default=True,
    help="One-sided level of the lower bound on validation sensitivity that must reach the target.",
)
@click.option("--skip-bad", is_flag=True, help="Leave unreadable images out.")
def calibrate(
    bundle: str | None,
    data: str,
    split: str | None,
    out: str,
    target_sensitivity: float | None,
    method: str,
    confidence: float,
    skip_bad: bool,
) -> None:
    """Calibrate a bundle's probabilities and re-choose its threshold -> a new bundle.

    Fits Platt or temperature scaling (logit / T + shift) on validation data by minimising the
    negative log-likelihood and folds it into the final layer (Keras, TFLite and the phone then
    output calibrated probabilities), then stores the highest
    threshold whose one-sided 95% Clopper-Pearson lower bound of validation sensitivity
    reaches the target. The card records T, ECE and Brier before and after. Never tune on
    test data; run `edge evaluate` on it afterwards. BUNDLE defaults to the embedded model.

    \b
    Example:
      edge calibrate --data ../shared/data/fracatlas --skip-bad -o runs/calibrated
    """
    from edge.core.progress import bar
    from edge.core.report import fmt
    from train.calibrate import calibrate_bundle

    b = calibrate_bundle(
        bundle,
        data,
        out,
        split=split,
        target_sensitivity=target_sensitivity,
        method=method,
        confidence=confidence,
        skip_bad=skip_bad,
        progress=lambda it: bar(it, "calibrate"),
    )
    c = b.card.calibration or {}
    fit = c.get("fitted_on", "val")
    before, after = c["before"][fit], c["after"][fit]
    click.echo(f"bundle: {b.path}")
    click.echo(
        f"{c['method']}: logit / {c['temperature']:.4f} {c['shift']:+.4f} (folded into {c['folded_into']}), "
        f"fitted on {after['n']} images"
    )
    click.echo(
        f"{fit}: ECE {fmt(before['ece'])} -> {fmt(after['ece'])}, Brier {fmt(before['brier'])} -> {fmt(after['brier'])}, "
        f"NLL {fmt(before['nll'])} -> {fmt(after['nll'])}"
    )
    pol = b.card.contract.threshold_policy
    if pol:
        click.echo(
            f"threshold {b.threshold:.4f}: {fit} sensitivity {fmt(pol['val_sensitivity'])} of {pol['n_positives']} positives, "
            f"one-sided {pol['confidence']:.0%} lower bound {fmt(pol['val_sensitivity_lower_bound'])} "
            f"(target {pol['target_sensitivity']:.2f}{'' if pol['reached'] else ', NOT reached: too few positives'})"
        )
    if c.get("skipped_files"):
        click.echo(f"{c['skipped_files']} unreadable files were left out", err=True)
