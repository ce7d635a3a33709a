"""`edge parity-vectors`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("parity-vectors")
@click.option("-o", "--out", required=True, type=click.Path(), help="Directory to write (replaced atomically).")
@click.option(
    "--model",
    "model_path",
    type=click.Path(),
    default=None,
    help=".tflite from `edge convert` (default: the embedded bundle's int8 model, converted once and cached).",
)
@click.option(
    "--also-model",
    "also",
    multiple=True,
    type=click.Path(),
    help="Further .tflite files (e.g. the fp16 GPU model), each its own set of cases.",
)
@click.option("--image", "images", multiple=True, type=click.Path(), help="Radiographs to use (default: 4 bundled samples).")
@click.option(
    "--variants/--no-variants",
    default=True,
    show_default=True,
    help="Add preprocessing-only specs (3- and 1-channel caffe mean, non-square) and a large and a small image.",
)
def parity_vectors(out: str, model_path: str | None, also: tuple[str, ...], images: tuple[str, ...], variants: bool) -> None:
    """Write test vectors that prove the Android core preprocesses as training did.

    For each radiograph: the ARGB pixels the phone sees, the expected letterboxed canvas, float
    input, quantised input, LiteRT's raw output here, and the expected probabilities and decision;
    one set of cases per model, then preprocessing-only specs the phone can get (see edge.core.parity).
    android_demo/ci/check.sh reads them (EDGE_VECTORS_DIR).
    """
    from edge.core.bundle import SAMPLES_DIR
    from edge.core.parity import write_vectors
    from edge.core.runtime import EdgeModel

    if model_path is None:
        from convert.tflite import cached_int8

        model_path = str(cached_int8(None))
    models = [EdgeModel.load(p) for p in (model_path, *also)]
    paths = [Path(p) for p in images] or _default_images(SAMPLES_DIR)
    entries = write_vectors(models, paths, out, spec_variants=variants, size_variants=variants)
    for e in entries:
        click.echo(f"{len(e['cases'])} cases for {e.get('model_file') or e['spec']['model_id']}")
    click.echo(f"-> {out}")


def _default_images(samples: Path) -> list[Path]:
    """Two per class, including a greyscale and an RGB JPEG when the samples have both."""
    from PIL import Image

    chosen = []
    for cls in sorted(p for p in samples.iterdir() if p.is_dir()):
        files = sorted(cls.glob("*.jpg"))
        by_mode: dict[str, list] = {}
        for f in files:
            with Image.open(f) as im:
                by_mode.setdefault(im.mode, []).append(f)
        picks = [v[0] for v in by_mode.values()][:2]
        picks += [f for f in files if f not in picks][: 2 - len(picks)]
        chosen += picks
    return chosen
