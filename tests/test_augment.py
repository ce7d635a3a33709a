"""Augmentation presets: what each one contains, that it survives the bundle's JSON record, and
that the site-change transforms of ``multisite`` keep the canvas a uint8 radiograph."""

from __future__ import annotations

import json

import albumentations as A
import numpy as np
import pytest

from edge.core.errors import EdgeError
from edge.core.imageio import read_image
from edge.core.preprocess import PreprocessSpec, letterbox_u8
from train.augment import PRESETS, Augmenter, build_preset, describe, load_augmentation

SITE_CHANGES = {"RandomToneCurve", "Sharpen", "Downscale", "ImageCompression"}


def _names(pipe: A.Compose | None) -> set[str]:
    return set() if pipe is None else {type(t).__name__ for t in pipe.transforms}


def test_multisite_is_radiograph_plus_site_changes() -> None:
    radiograph, multisite = _names(build_preset("radiograph")), _names(build_preset("multisite"))
    assert radiograph < multisite
    assert multisite - radiograph == SITE_CHANGES
    # the single-site presets stay as they were: a bundle trained with them replays the same way
    for name in ("light", "radiograph", "strong"):
        assert not _names(build_preset(name)) & SITE_CHANGES


def test_every_preset_round_trips_through_the_card_json(tmp_path) -> None:
    for name in PRESETS:
        pipe = build_preset(name)
        record = describe(pipe)
        if pipe is None:
            assert record is None
            continue
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(record))
        assert describe(load_augmentation(str(f))) == record


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(EdgeError, match="multisite"):
        build_preset("hospital")


def test_multisite_keeps_a_uint8_canvas_and_moves_boxes_with_it(fracatlas) -> None:
    spec = PreprocessSpec(size=(448, 448), channels=1)
    image = sorted(fracatlas.rglob("fractured/*.jpg"))[0]
    canvas = letterbox_u8(read_image(image).pixels, spec)
    batch = np.stack([canvas] * 8)
    aug = Augmenter(build_preset("multisite"))
    out, boxes = aug.with_boxes(batch, [np.array([[0.5, 0.5, 0.2, 0.2]])] * 8, seed=3)
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert any(not np.array_equal(o, canvas) for o in out)
    for b in boxes:
        assert b.shape == (1, 4) and np.all((b >= 0) & (b <= 1))
    # same seed, same batch: training after a resume sees the same pictures
    again, _ = aug.with_boxes(batch, [np.array([[0.5, 0.5, 0.2, 0.2]])] * 8, seed=3)
    assert np.array_equal(out, again)
