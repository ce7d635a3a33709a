"""Laws that hold for every input (hypothesis): letterbox and its inverse mapping, quantisation
round trips, AUROC as pair counting, ECE of a calibrated sample, order invariance of metrics."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edge.core.metrics import auroc, calibration, compute_metrics
from edge.core.preprocess import PreprocessSpec, dequantize, letterbox_geometry, letterbox_u8, quantize
from edge.explain.mapping import to_image

# no example database: nothing is written into the repository, each run draws afresh from a fixed seed per test
# EDGE_HYPOTHESIS_EXAMPLES: fewer examples under mutation testing (tests/mutation/run.py sets it)
FAST = settings(
    max_examples=int(os.environ.get("EDGE_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@st.composite
def image_and_box(draw):
    h, w = draw(st.integers(6, 60)), draw(st.integers(6, 60))
    H, W = draw(st.integers(12, 48)), draw(st.integers(12, 48))
    bh, bw = draw(st.integers(1, h)), draw(st.integers(1, w))
    y0, x0 = draw(st.integers(0, h - bh)), draw(st.integers(0, w - bw))
    return (h, w), (H, W), (y0, x0, y0 + bh, x0 + bw)


@FAST
@given(image_and_box())
def test_letterbox_then_inverse_mapping_returns_the_box(case):
    (h, w), size, (y0, x0, y1, x1) = case
    top, left, nh, nw = letterbox_geometry(h, w, size)
    # the box must span a few canvas pixels to survive the downscale
    margin_y, margin_x = math.ceil(2 * h / nh) + 1, math.ceil(2 * w / nw) + 1
    assume(y1 - y0 > 2 * margin_y and x1 - x0 > 2 * margin_x)
    assume((y1 - y0, x1 - x0) != (h, w))  # a box filling the image leaves nothing to find
    img = np.zeros((h, w), np.uint8)
    img[y0:y1, x0:x1] = 255
    canvas = letterbox_u8(img, PreprocessSpec(size=size))
    back = to_image(canvas.astype(np.float64), (h, w), PreprocessSpec(size=size))
    assert back.shape == (h, w)
    assert (back[y0 + margin_y : y1 - margin_y, x0 + margin_x : x1 - margin_x] > 0.5).all()
    outside = np.ones((h, w), bool)
    outside[max(0, y0 - margin_y) : y1 + margin_y, max(0, x0 - margin_x) : x1 + margin_x] = False
    assert (back[outside] < 0.5).all()


@FAST
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 300), st.integers(1, 300))
def test_letterbox_geometry_fits_and_centres(h, w, H, W):
    top, left, nh, nw = letterbox_geometry(h, w, (H, W))
    assert 1 <= nh <= H and 1 <= nw <= W
    assert nh == H or nw == W  # one side always fills the canvas
    assert top == (H - nh) // 2 and left == (W - nw) // 2
    s = min(H / h, W / w)
    assert abs(nh - h * s) <= 0.5 + 1e-9 or nh == 1
    assert abs(nw - w * s) <= 0.5 + 1e-9 or nw == 1


@FAST
@given(st.sampled_from([np.int8, np.uint8]), st.floats(1e-3, 1.0), st.data())
def test_quantize_then_dequantize_is_within_half_a_step(dtype, scale, data):
    info = np.iinfo(dtype)
    zp = data.draw(st.integers(int(info.min) + 1, int(info.max) - 1))
    lo, hi = (info.min - zp) * scale, (info.max - zp) * scale  # the representable range
    x = np.array(data.draw(st.lists(st.floats(lo, hi), min_size=1, max_size=20)))
    q = quantize(x, scale, zp, dtype)
    assert q.dtype == dtype
    err = np.abs(dequantize(q, scale, zp).astype(np.float64) - x)
    assert (err <= scale / 2 * (1 + 1e-6) + 1e-6).all()


def pair_count(y: list[int], s: list[float]) -> float:
    pos = [v for v, t in zip(s, y, strict=True) if t]
    neg = [v for v, t in zip(s, y, strict=True) if not t]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@FAST
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 1.0])), min_size=2, max_size=40))
def test_auroc_equals_pair_counting_with_ties_as_half(rows):
    y = [int(t) for t, _ in rows]
    s = [v for _, v in rows]
    assume(0 < sum(y) < len(y))
    assert auroc(np.array(y), np.array(s)) == pytest.approx(pair_count(y, s), abs=1e-12)


def _bin(nk: tuple[int, int]) -> int:
    return min(9, (10 * nk[1]) // nk[0])


@FAST
@given(
    st.lists(
        st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))), min_size=1, max_size=6, unique_by=_bin
    )
)
def test_ece_is_zero_for_a_perfectly_calibrated_sample(groups):
    conf, correct = [], []
    for n, k in groups:  # one group per bin: n samples at confidence k/n, exactly k of them correct
        conf += [k / n] * n
        correct += [1.0] * k + [0.0] * (n - k)
    cal = calibration(np.array(conf), np.array(correct))
    assert cal["ece"] == pytest.approx(0.0, abs=1e-12)
    assert sum(r["n"] for r in cal["bins"]) == len(conf)


@FAST
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=4, max_size=40), st.randoms(use_true_random=False))
def test_binary_metrics_do_not_depend_on_input_order(rows, rnd):
    y = np.array([t for t, _ in rows])
    p = np.array([v for _, v in rows])
    probs = np.c_[1 - p, p]
    labels = ["not_fractured", "fractured"]
    perm = list(range(len(y)))
    rnd.shuffle(perm)
    a = compute_metrics(y, probs, labels, "binary", "fractured", 0.5, ci=False)
    b = compute_metrics(y[perm], probs[perm], labels, "binary", "fractured", 0.5, ci=False)
    for k in ("accuracy", "sensitivity", "specificity", "precision", "f1", "brier", "ece"):
        assert a[k] == pytest.approx(b[k], abs=1e-12, nan_ok=True)  # a rate without its class is NaN both ways
    assert a["confusion"] == b["confusion"]
    assert (np.isnan(a["auroc"]) and np.isnan(b["auroc"])) or a["auroc"] == pytest.approx(b["auroc"], abs=1e-12)


@FAST
@given(st.lists(st.integers(0, 2), min_size=3, max_size=30), st.randoms(use_true_random=False), st.data())
def test_multiclass_metrics_do_not_depend_on_input_order(y, rnd, data):
    n = len(y)
    raw = np.array(data.draw(st.lists(st.floats(0.01, 1), min_size=3 * n, max_size=3 * n))).reshape(n, 3)
    probs = raw / raw.sum(axis=1, keepdims=True)
    y = np.array(y)
    perm = list(range(n))
    rnd.shuffle(perm)
    a = compute_metrics(y, probs, list("abc"), "multiclass", ci=False)
    b = compute_metrics(y[perm], probs[perm], list("abc"), "multiclass", ci=False)
    for k in ("accuracy", "recall", "specificity", "precision", "f1", "top3_accuracy", "ece"):
        assert a[k] == pytest.approx(b[k], abs=1e-12)
    assert a["confusion"] == b["confusion"]


@FAST
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_threshold_on_the_output_grid_gives_the_int8_model_the_float_models_call(t, p):
    from edge.core.calibration import OUTPUT_GRID, snap_to_output_grid

    s = snap_to_output_grid(t)
    k = s * OUTPUT_GRID - 0.5
    if t >= 0.5 / OUTPUT_GRID:
        assert s <= t < s + 1 / OUTPUT_GRID and k == round(k)  # the half step just below t
        # the int8 output rounds P to the grid (half up): the same call as the float P
        assert (math.floor(p * OUTPUT_GRID + 0.5) / OUTPUT_GRID >= s) == (p >= s)
    else:
        assert s == t  # no half step below it
