"""`edge explain`."""

from __future__ import annotations

from pathlib import Path

import click

from .util import output_dir

METHOD_CHOICES = ["gradcam", "gradcam++", "scorecam"]


def split_bundle_arg(args: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """The first argument is a bundle when it is a directory holding model_card.json."""
    if args and (Path(args[0]) / "model_card.json").is_file():
        return args[0], list(args[1:])
    return None, list(args)


@click.command()
@click.argument("args", nargs=-1, metavar="[BUNDLE] IMAGE_OR_DIR...")
@click.option(
    "--method",
    type=click.Choice(METHOD_CHOICES),
    default="gradcam",
    show_default=True,
    help="Grad-CAM (fast), Grad-CAM++ (several regions), Score-CAM (gradient-free, ~30 forward passes).",
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
def explain(args, method, layer, target, out, boxes, metadata, data, split, limit, overlays, skip_bad) -> None:
    """Heatmaps of where the model looked, as overlays with class and probability.

    \b
    Examples:
      edge explain xray.jpg                               # embedded default model
      edge explain runs/resnet/bundle scans/ --method gradcam++ -o out/
      edge explain --data ../shared/data/fracatlas --split test \\
          --boxes ../shared/data/fracatlas/boxes.csv -o loc/      # pointing game vs centre baseline
    """
    from edge.core.bundle import load_bundle
    from edge.core.data import discover, list_images
    from edge.core.errors import EdgeError
    from edge.core.report import fmt
    from edge.explain import explain_files, localisation_check

    bundle_path, inputs = split_bundle_arg(args)
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
    bundle = load_bundle(bundle_path)
    if boxes:
        if limit:
            from edge.explain import read_boxes

            known = read_boxes(boxes)
            paths = [p for p in paths if p.name in known][:limit]
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
        )
        o = r["overall"]
        click.echo(f"{r['method']} on {bundle.model_id}: {o['n']} images with boxes")
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
    r = explain_files(bundle, paths, out, method=method, layer=layer, target=target, skip_bad=skip_bad)
    for item in r["images"]:
        p = item["probabilities"][item["label"]]
        click.echo(f"{item['file']}: {item['label']} {p:.3f} -> {Path(out) / item['overlay']}")
    for s in r["skipped"]:
        click.echo(f"skipped {s['file']}: {s['problem']}", err=True)
    click.echo(f"{len(r['images'])} overlays in {out} ({r['method']}, layer {r['layer']})")
