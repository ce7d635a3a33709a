"""Preprocessing held to expectations written independently of edge.core.preprocess.

Geometry is derived by hand in each test; the bilinear resize is compared with a per-pixel loop
written here; rounding and quantisation use values where half-up, banker's rounding and
truncation give different answers, and zero-points that are not zero.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edge.core.imageio import read_image
from edge.core.preprocess import (
    PreprocessSpec,
    dequantize,
    letterbox_geometry,
    letterbox_u8,
    normalize,
    preprocess,
    quantize,
    resize_bilinear,
    to_grey,
)


def half_up(x: float) -> int:
    return math.floor(x + 0.5)


def loop_bilinear(a: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize, one output pixel at a time (the reference)."""
    h, w = a.shape
    out = np.empty((nh, nw))
    for i in range(nh):
        sy = min(max((i + 0.5) * h / nh - 0.5, 0.0), h - 1.0)
        y0 = math.floor(sy)
        y1 = min(y0 + 1, h - 1)
        fy = sy - y0
        for j in range(nw):
            sx = min(max((j + 0.5) * w / nw - 0.5, 0.0), w - 1.0)
            x0 = math.floor(sx)
            x1 = min(x0 + 1, w - 1)
            fx = sx - x0
            top = a[y0, x0] * (1 - fx) + a[y0, x1] * fx
            bottom = a[y1, x0] * (1 - fx) + a[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def loop_letterbox(grey: np.ndarray, size: tuple[int, int], top: int, left: int, nh: int, nw: int, pad: int) -> np.ndarray:
    canvas = np.full(size, pad, dtype=np.uint8)
    r = loop_bilinear(grey, nh, nw)
    for i in range(nh):
        for j in range(nw):
            canvas[top + i, left + j] = min(255, max(0, half_up(r[i, j])))
    return canvas


@pytest.fixture(scope="module")
def radiograph(fracatlas: Path) -> np.ndarray:
    """A real FracAtlas image of the common 373 (wide) x 454 (high) size, as grey."""
    for p in sorted((fracatlas / "test").glob("*/*.jpg")):  # both classes: the bundled subset is small
        try:
            px = read_image(p).pixels
        except Exception:  # unreadable files exist in FracAtlas; any readable one of that size will do
            continue
        if px.shape[:2] == (454, 373):
            return to_grey(px)
    pytest.fail("no readable 373x454 FracAtlas image in the test split")


def test_fracatlas_portrait_into_64_sits_at_hand_computed_offset(radiograph):
    h, w = radiograph.shape
    s = min(64 / h, 64 / w)  # 64/454: the height fills the canvas
    nh, nw = half_up(h * s), half_up(w * s)
    assert (nh, nw) == (64, 53)
    assert letterbox_geometry(h, w, (64, 64)) == (0, (64 - 53) // 2, 64, 53) == (0, 5, 64, 53)


def test_fracatlas_canvas_equals_independent_letterbox_odd_padding(radiograph):
    spec = PreprocessSpec(size=(64, 64), pad_value=7)
    got = letterbox_u8(radiograph, spec)
    want = loop_letterbox(radiograph, (64, 64), 0, 5, 64, 53, 7)
    np.testing.assert_array_equal(got, want)
    # 11 columns of padding: 5 on the left, 6 on the right
    assert (got[:, :5] == 7).all() and (got[:, 58:] == 7).all()
    assert (got[:, 5] != 7).any() and (got[:, 57] != 7).any()


def test_landscape_even_padding_top_and_bottom():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (10, 20)).astype(np.uint8)
    # s = min(8/10, 8/20) = 0.4: 4 x 8 content, 4 rows of padding split 2 + 2
    assert letterbox_geometry(10, 20, (8, 8)) == (2, 0, 4, 8)
    got = letterbox_u8(img, PreprocessSpec(size=(8, 8), pad_value=3))
    np.testing.assert_array_equal(got, loop_letterbox(img.astype(np.float64), (8, 8), 2, 0, 4, 8, 3))


def test_non_square_canvas_uses_height_and_width_separately():
    # canvas 30 high x 50 wide, image 20 x 20: s = min(30/20, 50/20) = 1.5 -> 30 x 30 at left 10
    assert letterbox_geometry(20, 20, (30, 50)) == (0, 10, 30, 30)
    # image 10 high x 40 wide: s = min(3, 1.25) = 1.25 -> 12.5 -> 13 rows (half up) x 50, top (30-13)//2 = 8
    assert letterbox_geometry(10, 40, (30, 50)) == (8, 0, 13, 50)


def test_content_size_rounds_half_up_not_to_even():
    # 4 x 1 into 10 x 10: s = min(2.5, 10) = 2.5, new width 2.5 -> 3 (banker's rounding would give 2)
    assert letterbox_geometry(4, 1, (10, 10)) == (0, 3, 10, 3)
    # 1 x 3 into 5 x 5: s = 5/3, new height 1.666 -> 2; top (5-2)//2 = 1
    assert letterbox_geometry(1, 3, (5, 5)) == (1, 0, 2, 5)


def test_upscaling_a_small_image():
    img = np.array([[0, 100], [200, 50], [255, 10]], dtype=np.uint8)  # 3 high x 2 wide
    # s = min(64/3, 64/2) = 21.33: 64 x round(42.67) = 43, left (64-43)//2 = 10
    assert letterbox_geometry(3, 2, (64, 64)) == (0, 10, 64, 43)
    got = letterbox_u8(img, PreprocessSpec(size=(64, 64)))
    np.testing.assert_array_equal(got, loop_letterbox(img.astype(np.float64), (64, 64), 0, 10, 64, 43, 0))


def test_one_pixel_images():
    # 1 x 1 fills the canvas; 1 x 5 becomes a 13-row band (12.8 rounded) at top (64-13)//2 = 25
    assert letterbox_geometry(1, 1, (64, 64)) == (0, 0, 64, 64)
    assert (letterbox_u8(np.array([[137]], np.uint8), PreprocessSpec(size=(64, 64))) == 137).all()
    assert letterbox_geometry(1, 5, (64, 64)) == (25, 0, 13, 64)
    # a 1 x 400 strip into 8 x 8 would round to 0 rows: at least one row is kept
    assert letterbox_geometry(1, 400, (8, 8)) == (3, 0, 1, 8)
    assert letterbox_geometry(400, 1, (8, 8)) == (0, 3, 8, 1)


@pytest.mark.parametrize(
    "shape,out", [((5, 7), (3, 4)), ((4, 4), (9, 6)), ((1, 6), (1, 3)), ((6, 1), (2, 5)), ((13, 11), (13, 11)), ((2, 3), (7, 2))]
)
def test_bilinear_equals_per_pixel_loop(shape, out):
    a = np.random.default_rng(sum(shape) * 7 + out[0]).uniform(0, 255, shape)
    np.testing.assert_allclose(resize_bilinear(a, *out), loop_bilinear(a, *out), rtol=0, atol=1e-9)


def test_canvas_rounds_half_up_and_keeps_black():
    # 1 x 2 -> 1 x 1 samples between the two pixels: 100.5 must become 101 (np.round would give 100)
    assert letterbox_u8(np.array([[100, 101]], np.uint8), PreprocessSpec(size=(1, 1)))[0, 0] == 101
    assert letterbox_u8(np.array([[0, 0]], np.uint8), PreprocessSpec(size=(1, 1), pad_value=9))[0, 0] == 0
    assert letterbox_u8(np.array([[255, 255]], np.uint8), PreprocessSpec(size=(1, 1)))[0, 0] == 255


def test_float_pixels_outside_0_255_are_clipped_not_wrapped():
    # decoders may hand over float grey beyond the range (e.g. a window overshoot): clip, never wrap around
    img = np.array([[-20.0, 300.0, 255.6, -0.6]])
    assert letterbox_u8(img, PreprocessSpec(size=(1, 4))).tolist() == [[0, 255, 255, 0]]


def test_empty_image_is_refused():
    with pytest.raises(ValueError, match="^empty image$"):
        letterbox_u8(np.zeros((0, 5), np.uint8), PreprocessSpec(size=(8, 8)))


def test_grey_conversion_of_each_layout():
    rgba = np.array([[[200, 100, 50, 0], [0, 0, 0, 255]]], dtype=np.uint8)
    assert to_grey(rgba)[0].tolist() == pytest.approx([0.299 * 200 + 0.587 * 100 + 0.114 * 50, 0.0])
    assert to_grey(np.full((2, 2, 1), 9, np.uint8)).tolist() == [[9.0, 9.0], [9.0, 9.0]]
    g = to_grey(np.array([[1, 2]], np.uint8))
    assert g.dtype == np.float64 and g.tolist() == [[1.0, 2.0]]
    for bad in (np.zeros((2, 2, 2)), np.zeros(4), np.zeros((1, 1, 1, 1))):
        with pytest.raises(ValueError, match="unsupported"):
            to_grey(bad)


def test_normalize_uses_each_channels_mean_and_std():
    spec = PreprocessSpec(channels=3, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0))
    x = normalize(np.array([[50, 100]], np.uint8), spec)
    assert x.dtype == np.float32 and x.shape == (1, 2, 3)
    np.testing.assert_allclose(x[0, 0], [20.0, 7.5, 4.0])
    np.testing.assert_allclose(x[0, 1], [45.0, 20.0, 14.0])


def test_normalize_of_the_default_spec_is_exact():
    # u8/255: float32 and float64 arithmetic agree on all 256 values, so this one is pinned bit for bit
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(normalize(u8, PreprocessSpec())[..., 0], (u8 / 255.0).astype(np.float32))


@pytest.mark.parametrize(
    "mean,std", [((103.939, 116.779, 123.68), (1.0, 1.0, 1.0)), ((114.799,), (1.0,)), ((123.68,), (58.395,))]
)
def test_normalize_is_float32_arithmetic_like_the_phone(mean, std):
    # The contract both sides keep (android_demo Preprocessor.normalize): mean and std rounded to float32,
    # then (u8 - mean) / std in float32. float64-then-round differs in the last bit for half the grey values.
    spec = PreprocessSpec(channels=len(mean), mean=mean, std=std)
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = normalize(u8, spec)
    for c in range(len(mean)):
        want = (u8.astype(np.float32) - np.float32(mean[c])) / np.float32(std[c])
        np.testing.assert_array_equal(got[..., c], want)


def test_preprocess_is_letterbox_then_normalize(radiograph):
    spec = PreprocessSpec(size=(32, 32), mean=(12.0,), std=(50.0,))
    canvas = loop_letterbox(radiograph, (32, 32), *letterbox_geometry(454, 373, (32, 32)), 0)
    np.testing.assert_allclose(preprocess(radiograph, spec)[..., 0], (canvas - 12.0) / 50.0, rtol=1e-6)


def test_quantize_with_nonzero_zero_points():
    x = np.array([-1.0, 0.0, 0.25, 0.3, 1.0, 0.7499, 0.75])
    # int8, scale 0.5, zero-point -3: floor(x/0.5 + 0.5) - 3
    assert quantize(x, 0.5, -3, np.int8).tolist() == [-5, -3, -2, -2, -1, -2, -1]
    # uint8, scale 1/255, zero-point 128 (x in -0.5..0.5; 127.5 + 128 clips to 255)
    q = quantize(np.array([-0.5, 0.0, 0.5, 0.002]), 1 / 255, 128, np.uint8)
    assert q.dtype == np.uint8 and q.tolist() == [1, 128, 255, 129]  # -127.5 rounds half up to -127


def test_quantize_clips_to_the_type_range():
    assert quantize(np.array([-1e3, 1e3]), 1.0, 5, np.int8).tolist() == [-128, 127]
    assert quantize(np.array([-1e3, 1e3]), 1.0, 5, np.uint8).tolist() == [0, 255]
    assert quantize(np.array([-128.0, 127.0]), 1.0, 0, np.int8).tolist() == [-128, 127]


def test_dequantize_with_nonzero_zero_points():
    got = dequantize(np.array([-128, -3, 0, 127], np.int8), 0.25, -3)
    assert got.dtype == np.float32 and got.tolist() == [-31.25, 0.0, 0.75, 32.5]
    assert dequantize(np.array([0, 128, 255], np.uint8), 1 / 256, 128).tolist() == pytest.approx([-0.5, 0.0, 127 / 256])


def test_spec_validation_and_round_trip():
    # the messages reach users (a bad card or spec file): each one says what is wrong
    for bad, words in (
        (dict(channels=2, mean=(0.0, 0.0), std=(1.0, 1.0)), "channels must be 1 or 3, not 2"),
        (dict(mean=(0.0, 1.0)), "mean and std need one value per channel"),
        (dict(std=(1.0, 2.0)), "mean and std need one value per channel"),
        (dict(std=(0.0,)), "std must not be zero"),
        (dict(resize="stretch"), "only letterbox resizing with bilinear interpolation is defined"),
        (dict(interpolation="nearest"), "only letterbox resizing with bilinear interpolation is defined"),
    ):
        with pytest.raises(ValueError) as e:
            PreprocessSpec(**bad)
        assert str(e.value) == words
    spec = PreprocessSpec(size=(40, 30), channels=3, pad_value=5, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0))
    assert spec.input_shape == (40, 30, 3)
    d = spec.to_dict()
    assert d["size"] == [40, 30] and d["mean"] == [1.0, 2.0, 3.0] and d["std"] == [4.0, 5.0, 6.0] and d["pad_value"] == 5
    assert PreprocessSpec.from_dict({**d, "unknown_future_key": 1}) == spec
    assert PreprocessSpec.from_dict({"size": [10, 12]}) == PreprocessSpec(size=(10, 12))


def test_spec_defaults_per_architecture():
    assert PreprocessSpec.for_arch("tiny", 96) == PreprocessSpec(size=(96, 96), channels=1, mean=(0.0,), std=(255.0,))
    assert PreprocessSpec.for_arch("custom", (64, 48), channels=3) == PreprocessSpec(
        size=(64, 48), channels=3, mean=(0.0,) * 3, std=(255.0,) * 3
    )
    assert PreprocessSpec.for_arch("vgg16", 224) == PreprocessSpec(
        size=(224, 224), channels=3, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)
    )
    assert PreprocessSpec.for_arch("resnet50", (96, 80)).size == (96, 80)
    assert PreprocessSpec.for_arch("resnet50", 64, channels=1) == PreprocessSpec(
        size=(64, 64), channels=1, mean=(114.799,), std=(1.0,)
    )
    d = PreprocessSpec()
    assert (d.size, d.channels, d.pad_value, d.mean, d.std) == ((224, 224), 1, 0, (0.0,), (255.0,))
