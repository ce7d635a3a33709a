"""`edge bench convert`: size and LiteRT latency of every format, and the accuracy cost of int8.

Figures are ratios measured in one run on this machine (floors from issue 3: int8 <= 0.26x the
float32 size, int8 latency <= 0.4x float32; QAT int8 AUROC within 0.005 of float, agreement >= 99%).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import numpy as np

from convert.tflite import FORMATS  # the one table of export formats: every format it lists is measured

ROUNDS = 5  # latency rounds: every format gets runs/ROUNDS invokes per round


def _latencies(paths: dict[str, Path], threads: int, runs: int, warmup: int, xnnpack: bool = True) -> dict[str, float]:
    """Median invoke time per file, measured round-robin (a few invokes of each file in turn,
    ROUNDS times): this VM's speed drifts by tens of percent over minutes, and interleaving
    makes the drift hit every format alike instead of whichever ran during a slow spell."""
    from edge.app.validation import time_edge
    from edge.core.runtime import EdgeModel

    models = {k: EdgeModel.load(p, threads=threads, xnnpack=xnnpack) for k, p in paths.items()}
    inputs = {k: m.quantize_input(np.zeros(m.preprocess_spec.input_shape, np.float32) + 0.5) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    per_round = max(1, runs // ROUNDS)
    for r in range(ROUNDS):
        for k, m in models.items():
            times[k].extend(time_edge(m, inputs[k], per_round, warmup if r == 0 else 1))
    return {k: float(np.median(v)) for k, v in times.items()}


def _arch_bundle(arch: str, size: int, canvases: np.ndarray, dest: Path):
    """A weights=None bundle of a backbone (sizes and speed do not depend on the weights' values)."""
    from edge.core.bundle import save_bundle
    from edge.core.card import Contract, ModelCard
    from edge.core.preprocess import PreprocessSpec
    from train.models import create_model, get_arch

    spec = PreprocessSpec.for_arch(arch, size)
    model = create_model(arch, spec.input_shape, 1)
    card = ModelCard(
        Contract.create(arch, "binary", ["fractured", "not_fractured"], "fractured", 0.5, spec),
        model_id=f"bench-{arch}-{size}",
        gradcam_layer=get_arch(arch).gradcam_layer,
    )
    return save_bundle(dest, model, card, calibration=canvases)


def _accuracy(bundle, tflite: Path, canv: np.ndarray, y: np.ndarray) -> dict:
    from edge.core.inference import decisions
    from edge.core.metrics import auroc
    from edge.core.preprocess import normalize
    from edge.core.runtime import EdgeModel

    pi = bundle.positive_index()
    pf_all = bundle.probabilities(bundle.load_model().predict(normalize(canv, bundle.spec), batch_size=32, verbose=0))
    pe_all = EdgeModel.load(tflite).predict_canvases(canv)
    pf, pe = pf_all[:, pi], pe_all[:, pi]
    pos = y == pi
    same = decisions(bundle, pf_all) == decisions(bundle, pe_all)
    return {
        "auroc_float": auroc(pos, pf),
        "auroc_int8": auroc(pos, pe),
        "agreement": float(same.mean()),
        "max_abs_diff": float(np.abs(pf - pe).max()),
    }


@click.command()
@click.option("--bundle", type=click.Path(), default=None, help="Bundle to measure (default: the embedded one).")
@click.option(
    "--archs", default="resnet50,vgg16", show_default=True, help="Backbones measured at --size with weights=None ('' for none)."
)
@click.option("--size", default=224, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--runs", default=30, show_default=True)
@click.option("--warmup", default=5, show_default=True)
@click.option(
    "--data",
    type=click.Path(),
    default=None,
    help="FracAtlas-style split tree: PTQ and QAT int8 accuracy on its test split (QAT fine-tunes on train).",
)
@click.option("--qat-epochs", default=2, show_default=True)
@click.option(
    "--qat-max-per-class",
    default=0,
    show_default=True,
    help="Training images per class for the QAT fine-tune (0: the whole train split).",
)
@click.option("--max-test", type=int, default=None, help="Use at most N test images.")
@click.option(
    "--builtin-kernels",
    is_flag=True,
    help="Also time float32 and int8 on TFLite's builtin kernels (no XNNPACK): shows whether int8 is slow "
    "or XNNPACK's float is fast on this CPU.",
)
@click.option("--workdir", type=click.Path(), default=None, help="Keep the converted files here (default: a temp dir).")
def bench(
    bundle, archs, size, threads, runs, warmup, data, qat_epochs, qat_max_per_class, max_test, builtin_kernels, workdir
) -> None:
    """Size and latency of float32/fp16/dynamic/int8, and PTQ vs QAT int8 accuracy."""
    from convert.tflite import convert_bundle
    from edge.core.bundle import load_bundle
    from edge.core.report import table

    work = Path(workdir or tempfile.mkdtemp(prefix="edge-bench-convert-"))
    work.mkdir(parents=True, exist_ok=True)
    main = load_bundle(bundle)
    canv = main.calibration_canvases()
    if canv is None or tuple(canv.shape[1:3]) != (size, size):
        from edge.core.data import discover, load_canvases
        from edge.core.preprocess import PreprocessSpec

        if data is None:
            raise click.UsageError(f"bundle calibration samples are not {size}px: pass --data for calibration images")
        ds = discover(data)
        ds = ds.split("train") if "train" in ds.splits else ds
        canv, _, _ = load_canvases([s.path for s in ds.samples[:64]], PreprocessSpec(size=(size, size)), skip_bad=True)
    targets = [("bundle: " + main.model_id, main)]
    for arch in [a for a in archs.split(",") if a]:
        targets.append((f"{arch} {size}px (weights=None)", _arch_bundle(arch, size, canv[:64], work / f"bundle_{arch}")))
    rows, builtin_rows = [], []
    for name, b in targets:
        files = {}
        for prec in FORMATS:
            files[prec] = work / f"{b.model_id}_{prec}.tflite"
            convert_bundle(b, prec, out=files[prec], debug=False, report=False, calib_max=64)
        sizes = {k: p.stat().st_size for k, p in files.items()}
        lats = _latencies(files, threads, runs, warmup)
        if builtin_kernels:
            pair = {k: files[k] for k in ("float32", "int8")}
            bl = _latencies(pair, threads, max(5, runs // 3), 2, xnnpack=False)
            builtin_rows.append([name, lats["float32"], lats["int8"], bl["float32"], bl["int8"], bl["int8"] / bl["float32"]])
        for prec in FORMATS:
            rows.append([name, prec, sizes[prec] / 1e6, sizes[prec] / sizes["float32"], lats[prec], lats[prec] / lats["float32"]])
        click.echo(f"done: {name}", err=True)
    click.echo(
        f"\nLiteRT {threads} threads, median of {runs} invokes after {warmup} warm-up, formats interleaved in {ROUNDS} rounds; "
        "ratios against float32 of the same model\n"
    )
    click.echo(table(["model", "format", "size MB", "size ratio", "latency ms", "latency ratio"], rows, 3))
    if builtin_rows:
        click.echo("\nXNNPACK against TFLite's builtin kernels (ms; ratio = builtin int8 / builtin float32)\n")
        click.echo(
            table(
                ["model", "XNNPACK float32", "XNNPACK int8", "builtin float32", "builtin int8", "builtin ratio"], builtin_rows, 2
            )
        )

    if data:
        from convert.qat import CompressConfig, compress
        from edge.core.data import discover, load_canvases

        test = discover(data).split("test")
        if max_test and len(test) > max_test:
            test.samples = test.samples[:max_test]
        y_all = test.labels_index(main.labels)
        tc, kept, _ = load_canvases([s.path for s in test.samples], main.spec, skip_bad=True)
        y = y_all[kept]
        ptq = _accuracy(main, work / f"{main.model_id}_int8.tflite", tc, y)
        qb = compress(
            main,
            CompressConfig(
                data=data, out=str(work / "bundle_qat"), qat=True, epochs=qat_epochs, max_per_class=qat_max_per_class or None
            ),
        )
        qat_file = work / "qat_int8.tflite"
        convert_bundle(qb, "int8", out=qat_file, debug=False, report=False)
        qat = _accuracy(qb, qat_file, tc, y)
        qat_vs_float = _accuracy(main, qat_file, tc, y)  # the QAT int8 file against the original float model
        rows2 = [
            [
                "PTQ int8 vs float",
                ptq["auroc_float"],
                ptq["auroc_int8"],
                ptq["auroc_float"] - ptq["auroc_int8"],
                ptq["agreement"],
                ptq["max_abs_diff"],
            ],
            [
                "QAT int8 vs QAT float",
                qat["auroc_float"],
                qat["auroc_int8"],
                qat["auroc_float"] - qat["auroc_int8"],
                qat["agreement"],
                qat["max_abs_diff"],
            ],
            [
                "QAT int8 vs original float",
                qat_vs_float["auroc_float"],
                qat_vs_float["auroc_int8"],
                qat_vs_float["auroc_float"] - qat_vs_float["auroc_int8"],
                qat_vs_float["agreement"],
                qat_vs_float["max_abs_diff"],
            ],
        ]
        click.echo(f"\nAccuracy on the test split ({len(y)} images, threshold {main.threshold:.3f})\n")
        click.echo(table(["comparison", "AUROC float", "AUROC int8", "AUROC drop", "top-1 agreement", "max |dp|"], rows2, 4))
    click.echo(f"\nfiles: {work}")
