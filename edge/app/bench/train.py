"""`edge bench train`: training images/s per architecture vs augmentation-pipeline images/s, and the
forward-only images/s that a frozen-backbone probe (train.probe) costs."""

from __future__ import annotations

import time

import click
import numpy as np

BENCH_ARCHS = ("custom448", "efficientnet_lite0", "custom", "vgg16", "resnet50")


@click.command()
@click.option("--data", default=None, type=click.Path(), help="Radiographs to feed the pipeline (default: the bundled samples).")
@click.option("--size", default=None, type=int, help="Input side for every arch (default: each arch's own, 224; custom448: 448).")
@click.option("--batch-size", default=16, show_default=True)
@click.option("--steps", default=3, show_default=True, help="Timed training steps per architecture (after one warm-up step).")
@click.option("--arch", "archs", multiple=True, show_default=True, default=BENCH_ARCHS)
@click.option("--augment", default="radiograph", show_default=True)
def bench(data: str | None, size: int | None, batch_size: int, steps: int, archs: tuple[str, ...], augment: str) -> None:
    """Print training throughput per architecture and the augmentation pipeline's throughput.

    The pipeline must outrun the step it feeds: the ratio pipeline/training should be > 1
    for every architecture. Measured in one run on the same machine and images.
    """
    from edge.core._tf import keras
    from edge.core.bundle import SAMPLES_DIR
    from edge.core.data import discover, load_canvases
    from edge.core.preprocess import PreprocessSpec
    from edge.core.report import table
    from train.augment import Augmenter, load_augmentation
    from train.models import create_model, get_arch
    from train.pipeline import BatchPlan, train_dataset

    ds = discover(data or SAMPLES_DIR)
    rows = []
    for arch in archs:
        info = get_arch(arch)
        side = size or info.default_size
        spec = PreprocessSpec.for_arch(arch, side, info.default_channels)
        canv, kept, _ = load_canvases([s.path for s in ds.samples], spec, skip_bad=True)
        labels = (np.array([s.label for s in ds.samples])[kept] == ds.classes[0]).astype(np.int64)
        n = steps * batch_size * 4
        reps = int(np.ceil(n / len(canv)))
        canv, labels = np.concatenate([canv] * reps)[:n], np.concatenate([labels] * reps)[:n]
        aug = Augmenter(load_augmentation(augment, spec.pad_value))
        plan = BatchPlan(labels, batch_size, 0, balanced=False)
        dset = train_dataset(canv, labels.astype(np.float32)[:, None], spec, plan, aug)
        t0 = time.perf_counter()
        count = sum(int(x.shape[0]) for x, _, _ in dset)  # full pipeline: augment + normalise, parallel batches
        pipe_ips = count / (time.perf_counter() - t0)
        model = create_model(arch, spec.input_shape, 1)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4), loss="binary_crossentropy")
        x = np.random.default_rng(0).normal(size=(batch_size, *spec.input_shape)).astype(np.float32)
        y = np.zeros((batch_size, 1), np.float32)
        model.train_on_batch(x, y)  # warm-up: graph tracing
        t0 = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        train_ips = steps * batch_size / (time.perf_counter() - t0)
        xb = np.concatenate([x] * 4)  # forward only, what the probe recipe's feature extraction costs
        model.predict(xb, batch_size=len(xb), verbose=0)
        t0 = time.perf_counter()
        for _ in range(steps):
            model.predict(xb, batch_size=len(xb), verbose=0)
        fwd_ips = steps * len(xb) / (time.perf_counter() - t0)
        rows.append([arch, f"{side}x{side}x{spec.channels}", train_ips, fwd_ips, pipe_ips, pipe_ips / train_ips])
        click.echo(f"{arch}: training {train_ips:.1f}, forward {fwd_ips:.1f}, pipeline {pipe_ips:.1f} img/s", err=True)
    head = ["arch", "input", "training img/s", "forward-only img/s", "augmentation pipeline img/s", "pipeline / training"]
    click.echo(table(head, rows, digits=1))
