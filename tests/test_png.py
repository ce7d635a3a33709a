"""edge.explain.png: overlay PNGs decode, bit-exact and in the right channel order, in an independent decoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edge.core.imageio import read_image
from edge.explain.png import encode_png


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (31, 17, 3), (9, 4, 4), (2, 300, 3)])
def test_round_trip_random(shape):
    a = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode_png(a))))
    assert back.shape == a.shape and np.array_equal(back, a)


def test_round_trip_real_radiograph_and_strided_view(fracatlas):
    path = sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[0]
    grey = read_image(path).pixels
    rgb = np.stack([grey, 255 - grey, grey // 2], axis=2)[:, ::-1]  # not contiguous
    for a in (grey, rgb):
        png = encode_png(a)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), a)
    assert len(encode_png(grey)) < grey.size  # the filter + deflate actually compress


def test_rejects_what_png_cannot_hold():
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="H x W"):
        encode_png(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="H x W"):
        encode_png(np.zeros((0, 4), np.uint8))
