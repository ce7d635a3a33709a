"""Explanations on real radiographs: each method, equivalence with tf-keras-vis, mapping back to
the original image, overlays, the localisation scores, and `edge explain` end to end."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge.app.cli import main
from edge.core._tf import tf  # noqa: F401  (tf-keras first; tf_keras_vis imports tensorflow)
from edge.core.errors import DataError, EdgeError
from edge.core.imageio import read_image
from edge.core.preprocess import PreprocessSpec, preprocess
from edge.explain import Explainer, localize
from edge.explain.mapping import grid_shape, to_grid, to_image


@pytest.fixture(scope="session")
def xp_images(small_data):
    return sorted((small_data / "test" / "fractured").glob("*.jpg"))[:3]


@pytest.fixture(scope="session")
def xp_tiny(tiny_bundle):
    return Explainer(tiny_bundle)


@pytest.fixture(scope="session")
def xp_custom(custom_bundle_small):
    return Explainer(custom_bundle_small)


@pytest.fixture(scope="session")
def xp_truncated(fracatlas):
    from edge.core.errors import ImageReadError

    for p in sorted(fracatlas.glob("*/not_fractured/IMG00041*.jpg")):
        try:
            read_image(p)
        except ImageReadError:
            return p
    pytest.fail("no truncated JPEG found among the FracAtlas IMG00041xx files")


# --- the methods --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
@pytest.mark.parametrize("which", ["xp_tiny", "xp_custom"])
def test_each_method_explains_real_radiographs(request, which, method, xp_images):
    ex: Explainer = request.getfixturevalue(which)
    pixels = read_image(xp_images[0]).pixels
    e = ex.explain(pixels, method)
    # prediction that comes with the explanation = the bundle's own prediction
    want = ex.bundle.predict_proba(preprocess(pixels, ex.spec)[None])[0]
    np.testing.assert_allclose(e.probabilities, want, atol=1e-5)
    assert e.target_label == "fractured"  # binary default: where does it see a fracture?
    h, w = ex.bundle.load_model().get_layer(ex.layer).output_shape[1:3]
    assert e.cam.shape == (h, w)
    assert e.cam.min() >= 0.0 and e.cam.max() <= 1.0
    assert e.heatmap().shape == pixels.shape[:2]
    assert e.grid().shape == grid_shape(e.cam.shape, pixels.shape[:2], ex.spec)


def test_layer_from_card_and_override(tiny_bundle, xp_tiny):
    assert xp_tiny.layer == tiny_bundle.card.gradcam_layer == "features_relu"
    other = Explainer(tiny_bundle, layer="stage1_out", warmup=False)
    x = np.zeros((1, *tiny_bundle.spec.input_shape), np.float32)
    assert other.run(x)[1].shape[1:] == tuple(tiny_bundle.load_model().get_layer("stage1_out").output_shape[1:3])
    with pytest.raises(EdgeError, match="not a spatial feature map"):
        Explainer(tiny_bundle, layer="head_out", warmup=False)


def test_negative_target_and_unknown_target(xp_tiny, xp_images):
    pixels = read_image(xp_images[1]).pixels
    pos = xp_tiny.explain(pixels, "gradcam", "fractured")
    neg = xp_tiny.explain(pixels, "gradcam", "not_fractured")
    assert neg.target_label == "not_fractured"
    np.testing.assert_allclose(pos.probabilities, neg.probabilities)
    # Grad-CAM of 1-p uses the opposite gradients: the two maps cannot both be non-trivial and equal
    assert not (pos.cam.max() > 0 and neg.cam.max() > 0 and np.allclose(pos.cam, neg.cam))
    with pytest.raises(EdgeError, match="unknown target"):
        xp_tiny.explain(pixels, "gradcam", "broken")
    with pytest.raises(EdgeError, match="unknown explanation method"):
        xp_tiny.explain(pixels, "lime")


# --- equivalence with tf-keras-vis -------------------------------------------------------------
@pytest.mark.parametrize("which", ["xp_tiny", "xp_custom"])
def test_gradcam_matches_tf_keras_vis(request, which, xp_images):
    from tf_keras_vis.gradcam import Gradcam, GradcamPlusPlus
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    ex: Explainer = request.getfixturevalue(which)
    model = ex.bundle.load_model()
    x = np.stack([preprocess(read_image(p).pixels, ex.spec) for p in xp_images])
    kw = dict(penultimate_layer=ex.layer, seek_penultimate_conv_layer=False, expand_cam=False)

    def unit(a):  # tf-keras-vis divides by (max - min + 1e-7): undo the epsilon (tiny untrained CAMs)
        a = np.asarray(a)
        top = a.max(axis=(1, 2), keepdims=True)
        return np.where(top > 0, a / np.where(top > 0, top, 1), a)

    for cls, method in ((Gradcam, "gradcam"), (GradcamPlusPlus, "gradcam++")):
        ref = unit(cls(model, model_modifier=ReplaceToLinear(), clone=True)(lambda out: out[:, 0], x, **kw))
        _, ours, _ = ex.run(x, method, "fractured")
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=2e-4)
    # the plain per-call Gradcam on the sigmoid output: same map (the sigmoid only rescales gradients)
    plain = unit(Gradcam(model)(lambda out: out[:, 0], x, **kw))
    _, ours, _ = ex.run(x, "gradcam", "fractured")
    np.testing.assert_allclose(ours, plain, atol=2e-3)


# --- mapping back to the original image ---------------------------------------------------------
def test_grid_covers_the_original_image_only():
    spec = PreprocessSpec(size=(64, 64))
    hw = (100, 50)  # tall image: letterbox content 64 x 32, padding 16 px left and right
    assert grid_shape((8, 8), hw, spec) == (8, 4)
    cam = np.zeros((8, 8))
    cam[:, [0, 7]] = 1.0  # evidence only in cells whose interpolation support lies in the padding
    assert np.all(to_grid(cam, hw, spec) == 0.0)  # nothing of it is left on the image
    assert np.all(to_image(cam, hw, spec) == 0.0)
    cam = np.zeros((8, 8))
    cam[0, 2] = 1.0  # the top-left cell of the content (canvas x 16..23, y 0..7)
    g = to_grid(cam, hw, spec)
    assert np.unravel_index(np.argmax(g), g.shape) == (0, 0) and g.max() == 1.0
    heat = to_image(cam, hw, spec)
    assert heat.shape == hw
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert y < 100 / 8 and x < 50 / 4  # within the first cell's share of the original image


def test_real_image_grid_follows_its_aspect(xp_custom, xp_images):
    pixels = read_image(xp_images[0]).pixels
    e = xp_custom.explain(pixels)
    rows, cols = e.grid().shape
    h, w = pixels.shape[:2]
    assert abs(rows / cols - h / w) < 0.5  # 454x373 radiograph: more rows than columns
    assert (rows >= cols) == (h >= w)


# --- localisation scores ------------------------------------------------------------------------
def test_box_mask_pointing_energy_by_hand():
    box = (0.25, 0.25, 0.5, 0.5)  # x 0..5, y 0..5 on a 10 x 10 image
    mask = localize.box_mask([box], (10, 10))
    assert mask.sum() == 25 and mask[:5, :5].all()
    heat = np.zeros((10, 10))
    heat[2, 3] = 1.0
    assert localize.pointing_hit(heat, mask)
    heat[8, 8] = 2.0
    assert not localize.pointing_hit(heat, mask)
    assert localize.energy_inside(heat, mask) == pytest.approx(1 / 3)
    assert localize.energy_inside(np.ones((10, 10)), mask) == pytest.approx(0.25)
    assert not localize.pointing_hit(np.zeros((10, 10)), mask)  # a flat map points nowhere
    assert math.isnan(localize.energy_inside(np.zeros((10, 10)), mask))
    base = localize.centre_map((10, 10))
    assert np.unravel_index(np.argmax(base), base.shape) == (4, 4)
    r = localize.score_image(heat, [box, (0.5, 0.5, 0.2, 0.2)])
    assert r["baseline_hit"] and not r["hit"] and r["box_area"] == pytest.approx(0.28)  # 25 + 4 - 1 shared pixel


def test_summaries_by_hand():
    recs = [
        {"hit": h, "baseline_hit": b, "energy": e, "baseline_energy": 0.1, "box_area": 0.05, "region": g}
        for h, b, e, g in [
            (True, False, 0.5, "hand"),
            (False, False, 0.1, "hand"),
            (True, True, math.nan, "leg"),
            (True, False, 0.3, "mixed"),
        ]
    ]
    s = localize.summarise_by_region(recs)
    assert s["overall"]["hit_rate"] == 0.75 and s["overall"]["baseline_hit_rate"] == 0.25
    assert s["overall"]["energy_inside"] == pytest.approx(0.3)  # NaN left out
    assert s["per_region"]["hand"]["hit_rate"] == 0.5 and list(s["per_region"]) == ["hand", "leg", "mixed"]
    lo, hi = localize.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    assert localize.region_of({"hand": "1", "leg": "0", "mixed": "0"}) == "hand"
    assert localize.region_of({"hand": "1", "leg": "1", "mixed": "0"}) == "mixed"
    assert localize.region_of(None) == "unknown"


def test_read_boxes(tmp_path, fracatlas):
    boxes = localize.read_boxes(fracatlas / "boxes.csv")
    with open(fracatlas / "boxes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sum(map(len, boxes.values())) == len(rows) and set(boxes) == {r["image_id"] for r in rows}
    first = rows[0]  # a radiograph with several boxes keeps them all, in file order
    assert boxes[first["image_id"]][0] == tuple(float(first[k]) for k in ("x_center", "y_center", "width", "height"))
    assert all(0 <= v <= 1 for b in boxes.values() for box in b for v in box)
    bad = tmp_path / "b.csv"
    bad.write_text("image_id,x,y\nIMG.jpg,1,2\n")
    with pytest.raises(DataError, match="needs columns"):
        localize.read_boxes(bad)
    bad.write_text("image_id,x_center,y_center,width,height\nIMG.jpg,0.5,0.5,12,0.1\n")
    with pytest.raises(DataError, match="line 2"):
        localize.read_boxes(bad)


# --- the overlay -----------------------------------------------------------------------------------
def test_overlay_png_blends_heat_and_writes_the_caption(xp_images):
    from edge.explain.overlay import draw_caption, overlay_png, overlay_rgb

    pixels = read_image(xp_images[0]).pixels
    h, w = pixels.shape[:2]
    heat = np.zeros((6, 5), np.float32)
    heat[2, 2] = 1.0  # one hot cell: colour there, the plain radiograph far from it
    rgb = overlay_rgb(pixels, heat)
    grey = pixels if pixels.ndim == 2 else np.asarray(Image.fromarray(pixels).convert("L"))
    assert np.abs(rgb[-1, -1].astype(int) - int(grey[-1, -1])).max() <= 1  # cold corner: grey, R = G = B
    hot = rgb[h * 5 // 12, w // 2].astype(int)
    assert hot.max() - hot.min() > 60  # hot centre: coloured
    before = rgb.copy()
    out = draw_caption(rgb, "fractured 0.83 | Grad-CAM")
    strip = np.flatnonzero((before != out).any(axis=(1, 2)))
    assert out is rgb and 10 < strip.max() < 40  # a strip at the top, the rest untouched
    assert np.array_equal(out[strip.max() + 1 :], before[strip.max() + 1 :])
    changed = out[(before != out).any(axis=2)]
    assert (changed == changed[:, :1]).all()  # the caption is white on black: R = G = B
    assert out[2, 2].tolist() == [0, 0, 0] and out[: strip.max() + 1].max() == 255  # black box, white text
    png = overlay_png(pixels, heat, "fractured 0.83 | Grad-CAM")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), out)  # what the server sends is this picture
    tiny = draw_caption(np.full((8, 8, 3), 99, np.uint8), "a caption wider than the image")
    assert tiny.shape == (8, 8, 3) and tiny.max() <= 255  # clipped, not written past the array


# --- the command ------------------------------------------------------------------------------------
def test_edge_explain_writes_overlays(tiny_bundle, xp_images, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main, ["explain", str(tiny_bundle.path), *map(str, xp_images[:2]), "--method", "gradcam++", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    data = json.loads((out / "explanations.json").read_text())
    assert data["method"] == "gradcam++" and len(data["images"]) == 2
    for item, src in zip(data["images"], xp_images[:2], strict=True):
        im = Image.open(out / item["overlay"])
        assert im.mode == "RGB" and im.size == Image.open(src).size
        assert np.asarray(im).std(axis=2).max() > 0  # coloured heat (the radiograph alone is grey)
        assert item["label"] in ("fractured", "not_fractured") and len(item["grid"]) == item["grid_shape"][0]


def test_edge_explain_bad_file_one_line(tiny_bundle, xp_images, xp_truncated, tmp_path):
    r = CliRunner().invoke(main, ["explain", str(tiny_bundle.path), str(xp_truncated), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "truncated" in r.output and xp_truncated.name in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(
        main, ["explain", str(tiny_bundle.path), str(xp_truncated), str(xp_images[0]), "--skip-bad", "-o", str(tmp_path / "o2")]
    )
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "o2" / "explanations.json").read_text())
    assert len(data["images"]) == 1 and data["skipped"][0]["file"].endswith(xp_truncated.name)


def test_edge_explain_localisation_report(tiny_bundle, small_data, fracatlas, tmp_path):
    out = tmp_path / "loc"
    r = CliRunner().invoke(
        main,
        [
            "explain",
            str(tiny_bundle.path),
            "--data",
            str(small_data),
            "--split",
            "test",
            "--boxes",
            str(fracatlas / "boxes.csv"),
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    with open(fracatlas / "boxes.csv") as f:
        boxed = {row["image_id"] for row in csv.DictReader(f)}
    expected = sorted(p.name for p in (small_data / "test").rglob("*.jpg") if p.name in boxed)
    assert rep["overall"]["n"] == len(expected) > 0
    assert sorted(i["file"] for i in rep["images"]) == expected
    assert sum(s["n"] for s in rep["per_region"].values()) == len(expected)
    assert 0 <= rep["overall"]["baseline_hit_rate"] <= 1 and "centre" in (out / "report.md").read_text()
    assert "pointing-game hit rate" in r.output
