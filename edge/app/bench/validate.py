"""`edge bench validate`: where validation time goes, and whether its latency figure is honest.

The edge latency that `edge validate` reports must be within 10% of the bare interpreter's
invoke time measured separately here (a plain LiteRT loop, nothing of ours around it)."""

from __future__ import annotations

import time

import click
import numpy as np


def bare_invoke_ms(path, threads: int, runs: int, warmup: int) -> np.ndarray:
    """Invoke time of a plain LiteRT interpreter, deliberately not through edge.runtime or
    edge.validation: it is the independent yardstick the validator's figure is checked against."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.full(d["shape"], 100, dtype=d["dtype"]))
    for _ in range(warmup):
        it.invoke()
    out = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        it.invoke()
        out[i] = (time.perf_counter() - t) * 1000
    return out


@click.command()
@click.option("--full", type=click.Path(), default=None, help="Bundle (default: the embedded one).")
@click.option(
    "--edge", "edge_model", type=click.Path(), default=None, help=".tflite (default: the bundle's cached int8 conversion)."
)
@click.option("--data", required=True, type=click.Path(), help="Labelled images (a split tree: its test split).")
@click.option("--images", default=500, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--runs", default=200, show_default=True)
def bench(full, edge_model, data, images, threads, runs) -> None:
    """Validate N radiographs: time split, and reported vs bare invoke latency."""
    from edge.app.validation import validate
    from edge.core.bundle import load_bundle
    from edge.core.report import table

    b = load_bundle(full)
    if edge_model is None:
        from convert.tflite import cached_int8

        edge_model = cached_int8(b)
    r = validate(full=b, edge=edge_model, data=data, threads=threads, runs=runs, max_images=images)
    t = r["timing_s"]
    n = r["data"]["n"]
    click.echo(f"\nValidation of {n} radiographs ({len(r['data']['skipped'])} unreadable skipped)\n")
    click.echo(
        table(
            ["stage", "seconds", "ms per image", "share"],
            [
                [k, t[k], 1000 * t[k] / n, t[k] / t["total"]]
                for k in ("decode_preprocess", "full_inference", "edge_inference", "total")
            ],
            3,
        )
    )
    bare = bare_invoke_ms(edge_model, threads, runs, 5)
    rep = r["latency_ms"]["edge"]["p50"]
    ratio = rep / float(np.median(bare))
    click.echo(
        f"\nEdge latency, {threads} threads, {runs} runs: reported by validate p50 {rep:.3f} ms; "
        f"bare interpreter p50 {np.median(bare):.3f} ms; ratio {ratio:.3f} "
        f"({'within' if abs(ratio - 1) <= 0.10 else 'NOT within'} 10%)"
    )
    click.echo(
        f"full model (Keras, one image) p50 {r['latency_ms']['full']['p50']:.2f} ms; "
        f"AUROC full {r['full']['auroc']:.4f} edge {r['edge']['auroc']:.4f}; agreement {r['agreement']:.2%}"
    )
