"""`edge explain`."""

from __future__ import annotations

from pathlib import Path

import click

from .util import output_dir

METHOD_CHOICES = ["gradcam", "gradcam++", "scorecam", "occlusion"]


def split_bundle_arg(args: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """The first argument is a bundle when it is a directory holding model_card.json or an embedded name."""
    from edge.core.bundle import is_bundle_ref

    if args and is_bundle_ref(args[0]):
        return args[0], list(args[1:])
    return None, list(args)


@click.command()
@click.argument("args", nargs=-1, metavar="[BUNDLE] IMAGE_OR_DIR...")
@click.option(
    "--method",
    type=click.Choice(METHOD_CHOICES),
    default=None,
    help="Bundle: gradcam (default; fast), gradcam++ (several regions), scorecam (gradient-free, ~30 forward "
    "passes). --edge: occlusion (default and only choice; ~170 forward passes of the .tflite per image).",
)
@click.option(
    "--edge",
    "edge_model",
    type=click.Path(),
    default=None,
    metavar="MODEL.tflite",
    help="Explain this .tflite (what the phone runs) by occlusion, in LiteRT, instead of a Keras bundle.",
)
@click.option(
    "--compare",
    type=click.Path(),
    default=None,
    metavar="OTHER.tflite",
    help="With --edge: also explain this .tflite (e.g. the float32 conversion of the same bundle) and report the "
    "per-image Spearman rank correlation of the two maps (and both hit rates with --boxes).",
)
@click.option(
    "--patch",
    type=click.IntRange(min=1),
    default=None,
    help="Occlusion patch side in input pixels (default: a seventh of the input: 32 at 224, 64 at 448).",
)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    default=None,
    help="Occlusion step in input pixels (default: half the patch; the map has one cell per step).",
)
@click.option(
    "--fill",
    type=click.Choice(["blur", "mean", "pad"]),
    default="blur",
    show_default=True,
    help="What covers the patch: a blurred copy (keeps brightness, removes fracture lines), the content's mean "
    "grey, or the padding value.",
)
@click.option("--layer", default=None, help="Target feature layer (default: the card's gradcam_layer for the architecture).")
@click.option("--target", default=None, help="Class to explain (default: the positive class; multi-class: the predicted one).")
@click.option(
    "-o",
    "--out",
    default="explanations",
    show_default=True,
    type=click.Path(),
    callback=output_dir,
    help="Output folder: overlay PNGs + explanations.json (with --boxes: report.json + report.md).",
)
@click.option(
    "--boxes",
    type=click.Path(),
    default=None,
    help="Localisation check: CSV of fracture boxes (image_id,x_center,y_center,width,height, YOLO-normalised).",
)
@click.option(
    "--metadata",
    type=click.Path(),
    default=None,
    help="Per-image CSV with body-region flags (default: metadata.csv next to --boxes).",
)
@click.option(
    "--data", type=click.Path(), default=None, help="Take the images from this dataset's --split instead of listing them."
)
@click.option("--split", default="test", show_default=True, help="Split used with --data.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N images (quick looks).")
@click.option("--overlays", is_flag=True, help="With --boxes: also write the overlay PNGs (OUT/overlays).")
@click.option(
    "--skip-bad", is_flag=True, help="Leave unreadable/truncated images out (listed in the output) instead of stopping."
)
def explain(
    args,
    method,
    edge_model,
    compare,
    patch,
    stride,
    fill,
    layer,
    target,
    out,
    boxes,
    metadata,
    data,
    split,
    limit,
    overlays,
    skip_bad,
) -> None:
    """Heatmaps of where the model looked, as overlays with class and probability.

    A Keras bundle is explained by Grad-CAM and its kin (gradients of the float model). The phone
    runs a .tflite, often int8: --edge explains that file itself by occlusion sensitivity (a patch
    slides over the input; where covering it lowers P(fractured) most is where the evidence is).

    \b
    Examples:
      edge explain xray.jpg                               # embedded default model, Grad-CAM
      edge explain runs/resnet/bundle scans/ --method gradcam++ -o out/
      edge explain --data ../shared/data/fracatlas --split test \\
          --boxes ../shared/data/fracatlas/boxes.csv -o loc/      # pointing game vs centre baseline
      edge explain --edge model_int8.tflite xray.jpg      # occlusion on the phone's model
      edge explain --edge model_int8.tflite --compare model_float32.tflite \\
          --data ../shared/data/fracatlas --split test \\
          --boxes ../shared/data/fracatlas/boxes.csv -o occ/      # int8 vs float32: rank correlation, hit rates
    """
    from edge.core.bundle import load_bundle
    from edge.core.data import discover, list_images
    from edge.core.errors import EdgeError
    from edge.core.report import fmt
    from edge.explain import explain_files, localisation_check

    bundle_path, inputs = split_bundle_arg(args)
    if edge_model is None:
        if compare:
            raise click.UsageError("--compare needs --edge (it compares two .tflite files)")
        if method == "occlusion":
            raise click.UsageError("occlusion runs on a .tflite: pass --edge MODEL.tflite")
        if patch or stride or fill != "blur":
            raise click.UsageError("--patch, --stride and --fill are occlusion settings: use them with --edge")
    else:
        if bundle_path:
            raise click.UsageError(f"give either a bundle ({bundle_path}) or --edge, not both")
        if method not in (None, "occlusion"):
            raise click.UsageError(f"a .tflite is explained by occlusion, not {method}: Grad-CAM needs the Keras bundle")
        if layer:
            raise click.UsageError("--layer picks a CAM layer of a bundle; occlusion has none")
    method = method or ("occlusion" if edge_model else "gradcam")
    if data:
        ds = discover(data)
        sub = ds.split(split) if ds.splits else ds
        if not len(sub):
            raise EdgeError(f"the dataset has no '{split}' split (it has {ds.splits})", data)
        paths = [s.path for s in sub.samples]
    elif inputs:
        paths = list_images(inputs)
    else:
        raise EdgeError("no images given", hint="pass image files or folders, or --data DIR")
    if limit and not boxes:
        paths = paths[:limit]
    if boxes and limit:
        from edge.explain import read_boxes

        known = read_boxes(boxes)
        paths = [p for p in paths if p.name in known][:limit]
    explainer = None
    if edge_model:
        from edge.explain.occlusion import OcclusionExplainer

        explainer = OcclusionExplainer(edge_model, patch=patch, stride=stride, fill=fill)
        if compare:
            from edge.explain.compare import compare_occlusion

            other = OcclusionExplainer(compare, patch=patch, stride=stride, fill=fill)
            c = compare_occlusion(explainer, other, paths, out, boxes, metadata, target, skip_bad)
            _echo_comparison(c, Path(out))
            return
    bundle = explainer.model if explainer else load_bundle(bundle_path)
    if boxes:
        r = localisation_check(
            bundle,
            paths,
            boxes,
            out,
            metadata_csv=metadata,
            method=method,
            layer=layer,
            target=target,
            skip_bad=skip_bad,
            overlays=overlays,
            explainer=explainer,
        )
        o = r["overall"]
        click.echo(f"{r['method']} on {r['model'].get('file') or r['model']['id']}: {o['n']} images with boxes")
        click.echo(
            f"pointing-game hit rate {fmt(o['hit_rate'])} (centre baseline {fmt(o['baseline_hit_rate'])}); "
            f"energy in boxes {fmt(o['energy_inside'])} (centre {fmt(o['baseline_energy_inside'])}, "
            f"box area {fmt(o['box_area_share'])}); flat heatmaps {o['flat_heatmaps']}"
        )
        for g, s in r["per_region"].items():
            click.echo(
                f"  {g:<9} n={s['n']:<3} hit {fmt(s['hit_rate'])}  centre {fmt(s['baseline_hit_rate'])}  "
                f"energy {fmt(s['energy_inside'])}"
            )
        for s in r["skipped"]:
            click.echo(f"skipped {s['file']}: {s['problem']}", err=True)
        click.echo(f"report: {Path(out) / 'report.md'}")
        return
    r = explain_files(bundle, paths, out, method=method, layer=layer, target=target, skip_bad=skip_bad, explainer=explainer)
    for item in r["images"]:
        p = item["probabilities"][item["label"]]
        click.echo(f"{item['file']}: {item['label']} {p:.3f} -> {Path(out) / item['overlay']}")
    for s in r["skipped"]:
        click.echo(f"skipped {s['file']}: {s['problem']}", err=True)
    where = f"layer {r['layer']}" if r["layer"] else ", ".join(f"{k} {v}" for k, v in r["settings"].items())
    click.echo(f"{len(r['images'])} overlays in {out} ({r['method']}, {where})")


def _echo_comparison(c: dict, out: Path) -> None:
    from edge.core.report import fmt

    s = c["spearman"]
    click.echo(f"occlusion {Path(c['a']['file']).name} vs {Path(c['b']['file']).name}: {len(c['images'])} images")
    click.echo(
        f"Spearman rho per image: median {fmt(s['median'])}, min {fmt(s['min'])} "
        f"({s['undefined']} undefined: a flat map); same strongest position {fmt(c['same_peak_rate'])}"
    )
    for key in ("a", "b"):
        m = c[key]
        line = f"  {Path(m['file']).name} ({m['precision']}): {fmt(m['ms_per_image_median'], 0)} ms/image"
        if f"localisation_{key}" in c:
            o = c[f"localisation_{key}"]["overall"]
            line += (
                f", hit rate {fmt(o['hit_rate'])} (centre {fmt(o['baseline_hit_rate'])}), "
                f"energy in boxes {fmt(o['energy_inside'])}"
            )
        click.echo(line)
    for s_ in c["skipped"]:
        click.echo(f"skipped {s_['file']}: {s_['problem']}", err=True)
    click.echo(f"report: {out / 'report.md'}")
