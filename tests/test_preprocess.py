import numpy as np
import pytest

from edge.core.preprocess import PreprocessSpec, letterbox_geometry, letterbox_u8, normalize, quantize, resize_bilinear, to_grey


def test_grey_uses_bt601_weights():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]]], dtype=np.uint8)
    assert to_grey(px)[0].tolist() == pytest.approx([76.245, 149.685, 29.07, 10.0])


def test_letterbox_geometry_keeps_aspect_ratio_and_centres():
    # a portrait 454x373 radiograph into 224x224: height fills, width is padded on both sides
    top, left, nh, nw = letterbox_geometry(454, 373, (224, 224))
    assert (top, nh) == (0, 224)
    assert nw == int(np.floor(373 * 224 / 454 + 0.5)) == 184
    assert left == (224 - 184) // 2


def test_letterbox_pads_and_resizes():
    img = np.full((10, 20), 200, np.uint8)
    spec = PreprocessSpec(size=(8, 8), pad_value=7)
    out = letterbox_u8(img, spec)
    assert out.shape == (8, 8) and out.dtype == np.uint8
    assert (out[:2] == 7).all() and (out[6:] == 7).all() and (out[2:6] == 200).all()


def test_bilinear_half_pixel_downscale_averages_pairs():
    a = np.array([[0.0, 10.0, 20.0, 30.0]])
    # 4 -> 2 with half-pixel centres samples at x=0.5 and 2.5: the mean of each pair
    assert resize_bilinear(a, 1, 2)[0].tolist() == [5.0, 25.0]


def test_normalize_replicates_grey_into_three_channels():
    spec = PreprocessSpec.for_arch("vgg16", 4)
    x = normalize(np.full((4, 4), 100, np.uint8), spec)
    assert x.shape == (4, 4, 3)
    assert x[0, 0].tolist() == pytest.approx([100 - 103.939, 100 - 116.779, 100 - 123.68], abs=1e-4)


def test_spec_round_trip_and_validation():
    spec = PreprocessSpec.for_arch("custom", 96)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        PreprocessSpec(channels=2, mean=(0, 0), std=(1, 1))


def test_quantize_rounds_half_up_and_clips():
    x = np.array([0.0, 0.5 / 255, 1.0, 2.0], np.float32)
    q = quantize(x, 1 / 255, 0, np.uint8)
    assert q.tolist() == [0, 1, 255, 255]
