"""`edge bench explain`: explanation latency of the server against a plain tf-keras-vis call,
and the localisation hit rate against the centre baseline."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np

FLOOR = 0.25  # server p50 must be at most this fraction of the plain per-call Gradcam (issue 12: on both kinds of CPU)


def _pct(ms: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "n": len(ms)}


def cpu_summary(cpuinfo: str | None = None) -> str:
    """The CPU and the vector units that decide these figures (an AVX-512 VNNI machine runs the
    same Grad-CAM far faster than an AVX2-only one), read from /proc/cpuinfo on Linux."""
    import platform

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or platform.machine()
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)}
    name = fields.get("model name") or platform.machine()
    flags = set(fields.get("flags", "").split())
    units = [
        u
        for u, f in (("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AVX-512 VNNI", "avx512_vnni"), ("AVX-VNNI", "avx_vnni"))
        if f in flags
    ]
    return f"{name} ({', '.join(units) or 'no AVX2'})"


def _data_root(data: str | None) -> Path:
    from edge.core.errors import EdgeError

    cands = [Path(data)] if data else []
    if os.environ.get("EDGE_DATA_DIR"):
        cands.append(Path(os.environ["EDGE_DATA_DIR"]) / "fracatlas")
    repo = Path(__file__).resolve().parents[3]
    cands += [repo.parent / "shared" / "data" / "fracatlas"]
    for c in cands:
        if (c / "test").is_dir():
            return c
    raise EdgeError("FracAtlas not found", hint="pass --data PATH/fracatlas or set EDGE_DATA_DIR")


def _resnet_bundle(tmp: Path, size: int):
    from edge.core.bundle import save_bundle
    from edge.core.card import Contract, ModelCard
    from edge.core.preprocess import PreprocessSpec
    from train.models import create_model, get_arch

    spec = PreprocessSpec.for_arch("resnet50", size)
    model = create_model("resnet50", spec.input_shape, 1, weights=None)  # latency only: random weights
    card = ModelCard(
        Contract.create("resnet50", "binary", ["fractured", "not_fractured"], "fractured", 0.5, spec),
        model_id=f"resnet50-{size}-random",
        gradcam_layer=get_arch("resnet50").gradcam_layer,
    )
    return save_bundle(tmp / "resnet50", model, card)


def _plain_gradcam(bundle, pixels: np.ndarray, n: int) -> list[float]:
    """The baseline: tf-keras-vis Gradcam built once, called per image (it rebuilds its model
    inside every call), with preprocessing, as a script would use it."""
    from edge.core._tf import tf  # noqa: F401  (tf-keras set up before tf_keras_vis imports tensorflow)
    from edge.core.preprocess import preprocess

    # isort: split
    from tf_keras_vis.gradcam import Gradcam

    gc = Gradcam(bundle.load_model())
    layer = bundle.card.gradcam_layer
    out = []
    for i in range(n + 1):
        t = time.perf_counter()
        gc(lambda o: o[:, 0], preprocess(pixels, bundle.spec)[None], penultimate_layer=layer, seek_penultimate_conv_layer=False)
        if i:  # the first call is warm-up
            out.append((time.perf_counter() - t) * 1e3)
    return out


def _server_latency(
    bundle,
    data: bytes,
    n: int,
    clients: int,
    per_client: int,
    workers: int,
    parts: dict[str, list[float]] | None = None,
    overlay_max_side: int | None = None,
    grid_only: list[float] | None = None,
) -> tuple[list[float], list[float], float]:
    """Sequential and concurrent /v1/explain latencies (with the overlay PNG, as a browser or script
    asks); ``grid_only`` collects sequential latencies of the phone's call (overlay=false), interleaved
    with the others so the VM's drift hits both alike."""
    import httpx

    from edge.app.bench.live_server import LiveServer
    from edge.app.server import ServerSettings, create_app

    settings = ServerSettings(no_auth=True, workers=workers, queue_size=64)
    if overlay_max_side:
        settings = dataclasses.replace(settings, overlay_max_side=overlay_max_side)
    t0 = time.perf_counter()
    with LiveServer(create_app(bundle, settings)) as srv:
        start_s = time.perf_counter() - t0

        def one(client: httpx.Client, keep: dict[str, list[float]] | None = None, overlay: bool = True) -> float:
            t = time.perf_counter()
            form = {} if overlay else {"overlay": "false"}
            r = client.post(f"{srv.url}/v1/explain", files={"file": ("x", data)}, data=form, timeout=300)
            r.raise_for_status()
            ms = (time.perf_counter() - t) * 1e3
            if keep is not None:  # where the time went, by the server's own clock (parsed after timing)
                for k, v in {**r.json()["timings_ms"], "client": ms}.items():
                    keep.setdefault(k, []).append(v)
            return ms

        with httpx.Client() as c:
            one(c)  # warm-up
            seq = []
            for _ in range(n):
                seq.append(one(c, parts))
                if grid_only is not None:
                    grid_only.append(one(c, overlay=False))

        def client_run(_):
            with httpx.Client() as c:
                return [one(c) for _ in range(per_client)]

        with ThreadPoolExecutor(clients) as pool:
            conc = [ms for lst in pool.map(client_run, range(clients)) for ms in lst]
    return seq, conc, start_s


def _parts_line(p50: dict[str, float]) -> str:
    inside = ("queue", "decode", "preprocess", "inference", "heatmap")
    job = sum(p50.get(k, 0.0) for k in inside)
    shown = [f"{k} {p50[k]:.1f}" for k in inside if k in p50]
    shown.append(f"route other {p50.get('total', job) - job:.1f}")
    shown.append(f"outside {p50.get('client', 0.0) - p50.get('total', job):.1f} ms")
    return ", ".join(shown)


@click.command()
@click.option("--bundle", default=None, type=click.Path(), help="Bundle to measure (default: the embedded default).")
@click.option("--resnet/--no-resnet", default=True, show_default=True, help="Also ResNet50 (random weights: latency only).")
@click.option("--size", default=224, show_default=True, help="ResNet50 input size.")
@click.option("-n", "--requests", "n", default=20, show_default=True, help="Sequential calls per measurement.")
@click.option("--clients", default=8, show_default=True, help="Concurrent clients.")
@click.option("--per-client", default=3, show_default=True, help="Requests each concurrent client sends.")
@click.option("--workers", default=2, show_default=True, help="Server inference threads (as `edge serve --workers`).")
@click.option("--data", default=None, type=click.Path(), help="FracAtlas folder (default: EDGE_DATA_DIR or ../shared/data).")
@click.option("--loc/--no-loc", default=True, show_default=True, help="Localisation check on the test split's fractured images.")
@click.option("--loc-limit", default=None, type=int, help="At most N images for the localisation check.")
@click.option("--overlay-max-side", default=None, type=int, help="Server overlay size cap (default: the server's own).")
@click.option("-o", "--out", default=None, type=click.Path(), help="Also write the figures (and the localisation report) here.")
def bench(bundle, resnet, size, n, clients, per_client, workers, data, loc, loc_limit, overlay_max_side, out) -> None:
    """Explain latency: server (Grad-CAM built once) vs plain per-call tf-keras-vis Gradcam.

    \b
    p50/p95 of POST /v1/explain over real HTTP (decode, preprocess, Grad-CAM, overlay PNG,
    JSON), sequential and with concurrent clients, against tf-keras-vis Gradcam called per
    image (preprocessing included) in-process. Floor: server p50 <= 0.25x the plain call.
    Then the pointing-game hit rate on FracAtlas test fractured images vs the centre baseline.
    """
    from edge.core.bundle import load_bundle
    from edge.core.fsutil import write_json
    from edge.core.imageio import read_image
    from edge.core.report import clean
    from edge.explain import localisation_check

    root = _data_root(data)
    sample = sorted((root / "test" / "fractured").glob("*.jpg"))[0]
    data_bytes = sample.read_bytes()
    pixels = read_image(sample).pixels
    models = [load_bundle(bundle)]
    tmp = tempfile.TemporaryDirectory(prefix="edge-bench-")
    if resnet:
        models.append(_resnet_bundle(Path(tmp.name), size))
    cpu = cpu_summary()
    results: dict = {"image": sample.name, "image_hw": list(pixels.shape[:2]), "cores": os.cpu_count(), "cpu": cpu, "models": {}}
    click.echo(
        f"image {sample.name} {pixels.shape[1]}x{pixels.shape[0]}; {os.cpu_count()} cores of {cpu}; "
        f"{n} sequential calls, {clients} clients x {per_client}"
    )
    ok = True
    for b in models:
        nb = max(5, n // 2) if b.arch == "resnet50" else n
        plain = _pct(_plain_gradcam(b, pixels, nb))
        parts: dict[str, list[float]] = {}
        grid: list[float] = []
        seq, conc, start_s = _server_latency(b, data_bytes, nb, clients, per_client, workers, parts, overlay_max_side, grid)
        s, c, g = _pct(seq), _pct(conc), _pct(grid)
        ratio, ratio_grid = s["p50"] / plain["p50"], g["p50"] / plain["p50"]
        ok &= ratio_grid <= FLOOR  # the floor is for the call the phone makes
        results["models"][b.model_id] = {
            "arch": b.arch,
            "input": list(b.spec.input_shape),
            "plain_tf_keras_vis_ms": plain,
            "server_sequential_ms": s,
            "server_sequential_grid_only_ms": g,
            "ratio_p50_grid_only": ratio_grid,
            "server_concurrent_ms": c,
            "server_start_s": start_s,
            "ratio_p50_sequential": ratio,
            "ratio_p50_concurrent": c["p50"] / plain["p50"],
            "throughput_concurrent_rps": len(conc) / (sum(conc) / 1e3 / clients),
            "server_parts_p50_ms": {k: float(np.median(v)) for k, v in parts.items()},
        }
        note = ", random weights" if "random" in b.model_id else ""
        click.echo(f"\n{b.model_id} ({b.arch}, {'x'.join(map(str, b.spec.input_shape))}{note}):")
        click.echo(f"  plain tf-keras-vis Gradcam per call   p50 {plain['p50']:8.1f} ms  p95 {plain['p95']:8.1f} ms")
        click.echo(
            f"  server /v1/explain sequential         p50 {s['p50']:8.1f} ms  p95 {s['p95']:8.1f} ms  "
            f"ratio p50 {ratio:.3f}x  (with the overlay PNG)"
        )
        click.echo(
            f"  server /v1/explain overlay=false      p50 {g['p50']:8.1f} ms  p95 {g['p95']:8.1f} ms  "
            f"ratio p50 {ratio_grid:.3f}x  {'OK' if ratio_grid <= FLOOR else 'ABOVE'} (floor {FLOOR}x; the phone's call)"
        )
        click.echo(
            f"  server /v1/explain {clients} concurrent clients p50 {c['p50']:8.1f} ms  p95 {c['p95']:8.1f} ms  "
            f"ratio p50 {c['p50'] / plain['p50']:.3f}x"
        )
        click.echo(
            "  sequential p50 by part (server clock; 'outside' = HTTP, multipart, JSON and the client): "
            + _parts_line(results["models"][b.model_id]["server_parts_p50_ms"])
        )
    if loc:
        b = models[0]
        paths = sorted((root / "test" / "fractured").glob("*.jpg"))
        boxes = root / "boxes.csv"
        from edge.explain import read_boxes

        known = read_boxes(boxes)
        paths = [p for p in paths if p.name in known][:loc_limit]
        loc_out = Path(out) / "localisation" if out else Path(tmp.name) / "loc"
        r = localisation_check(b, paths, boxes, loc_out, skip_bad=True)
        o = r["overall"]
        results["localisation"] = {"model": b.model_id, "overall": o, "per_region": r["per_region"]}
        click.echo(f"\nlocalisation ({b.model_id}, Grad-CAM, FracAtlas test fractured, n={o['n']}):")
        click.echo(
            f"  pointing-game hit rate {o['hit_rate']:.3f} vs centre-point baseline {o['baseline_hit_rate']:.3f}; "
            f"energy in boxes {o['energy_inside'] if o['energy_inside'] is None else round(o['energy_inside'], 3)} "
            f"vs centre {o['baseline_energy_inside']:.3f} (box area {o['box_area_share']:.3f}); "
            f"flat maps {o['flat_heatmaps']}"
        )
        for g, s in r["per_region"].items():
            click.echo(f"    {g:<9} n={s['n']:<3} hit {s['hit_rate']:.3f}  centre {s['baseline_hit_rate']:.3f}")
    if out:
        write_json(Path(out) / "bench_explain.json", clean(results))
    tmp.cleanup()
    click.echo(f"\nfloor (server p50 <= {FLOOR}x plain): {'met' if ok else 'NOT met'}")
