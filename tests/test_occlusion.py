"""Occlusion sensitivity on .tflite files (edge.explain.occlusion), int8 vs float32 comparison,
and `edge explain --edge`, on real radiographs and real converted models.

The known-answer model: a hand-built Keras graph whose output depends only on the brightness
inside one known canvas rectangle, converted to float32 and to int8 like any bundle. Covering
anything outside that rectangle cannot change its output, and covering part of it with black (fill
"pad") can only lower it, so the answer is known without asking any explanation method."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from edge.app.cli import main
from edge.core._tf import tf  # noqa: F401  (tf-keras first)
from edge.core.errors import EdgeError
from edge.core.imageio import read_image
from edge.core.preprocess import PreprocessSpec, letterbox_geometry
from edge.core.runtime import EdgeModel
from edge.core.spec import ModelSpec, TensorSpec
from edge.explain.compare import compare_occlusion, rank_correlation
from edge.explain.mapping import grid_shape
from edge.explain.occlusion import OcclusionExplainer, default_geometry, starts

SIZE = 48
REGION = (8, 26, 12, 12)  # top, left, height, width on the 48x48 canvas: upper right, off centre


def _region_keras(n_out: int = 1):
    """The REGION crop -> mean brightness -> Dense. Only REGION's pixels reach the output."""
    from edge.core._tf import keras

    top, left, h, w = REGION
    x_in = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Cropping2D(((top, SIZE - top - h), (left, SIZE - left - w)))(x_in)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(n_out, activation="sigmoid" if n_out == 1 else "softmax")
    out = dense(x)
    return keras.Model(x_in, out), dense


def _tflite(model, spec: PreprocessSpec, precision: str, canvases: np.ndarray, task: str, labels: list[str], path):
    """Convert with the project's converter settings and embed a spec, as `edge convert` does."""
    from ai_edge_litert.interpreter import Interpreter

    from convert.tflite import _converter, _representative

    conv = _converter(model, spec, precision, _representative(canvases, spec), "uint8")
    raw = conv.convert()
    it = Interpreter(model_content=raw)
    it.allocate_tensors()
    act = "sigmoid" if task == "binary" else "softmax"
    ms = ModelSpec(
        "region-test",
        "0" * 64,
        precision,
        task,
        labels,
        labels[0] if task == "binary" else None,
        0.5,
        spec,
        TensorSpec.from_details(it.get_input_details()[0]),
        TensorSpec.from_details(it.get_output_details()[0], act),
        {"arch": "hand-built"},
    )
    path.write_bytes(ms.embed(raw))
    return path


@pytest.fixture(scope="module")
def region_images(fracatlas):
    """Real radiographs: one as stored (portrait, padded left/right) and the same pixels turned
    on their side (landscape, padded top/bottom), so both letterbox geometries are covered."""
    paths = sorted((fracatlas / "test" / "fractured").glob("*.jpg"))
    px = read_image(paths[0]).pixels
    return [px, np.ascontiguousarray(np.rot90(px))]


@pytest.fixture(scope="module")
def region_models(tmp_path_factory, region_images):
    """The known-answer model as float32 and int8 .tflite files."""
    from edge.core._tf import keras
    from edge.core.preprocess import letterbox_u8, normalize

    spec = PreprocessSpec(size=(SIZE, SIZE))
    own = np.stack([letterbox_u8(p, spec) for p in region_images])
    # int8 calibration on what occlusion will feed: the test canvases, and the same with the region black
    covered = own.copy()
    top, left, h, w = REGION
    covered[:, top : top + h, left : left + w] = 0
    calib = np.concatenate([own, covered])
    model, dense = _region_keras()
    # logit = k * (brightness - b0): P(positive) mid-range (steep) on the test images, so that
    # covering part of the region moves it by several int8 output steps
    b = keras.Model(model.input, model.layers[-2].output).predict(normalize(own, spec), verbose=0).ravel()
    k = 2.0 / max(float(b.mean()), 1e-6)
    dense.set_weights([np.full((1, 1), k, np.float32), np.array([-k * float(b.mean())], np.float32)])
    d = tmp_path_factory.mktemp("region")
    labels = ["fractured", "not_fractured"]
    return {
        p: EdgeModel.load(_tflite(model, spec, p, calib, "binary", labels, d / f"region_{p}.tflite")) for p in ("float32", "int8")
    }


def _region_on_image(image_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """REGION (canvas pixels) in the original image's pixels: (y0, x0, y1, x1)."""
    top, left, nh, nw = letterbox_geometry(image_hw[0], image_hw[1], (SIZE, SIZE))
    sy, sx = image_hw[0] / nh, image_hw[1] / nw
    r_top, r_left, h, w = REGION
    return (r_top - top) * sy, (r_left - left) * sx, (r_top - top + h) * sy, (r_left - left + w) * sx


# --- geometry -----------------------------------------------------------------------------
def test_default_geometry_and_starts():
    assert default_geometry((224, 224)) == (32, 16) and default_geometry((448, 448)) == (64, 32)
    s = starts(224, 32, 16)
    assert s[0] == 0 and s[-1] == 192 and len(s) == 13  # flush with the end, no patch past it
    assert list(starts(50, 32, 16)) == [0, 16, 18]  # the last one moved flush with the edge
    # only patches overlapping the content [20, 204) are kept
    assert list(starts(224, 32, 16, 100, 120)) == [80, 96, 112]


# --- the known answer ---------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["float32", "int8"])
@pytest.mark.parametrize("orientation", [0, 1])
def test_occlusion_finds_the_region_that_drives_the_output(region_models, region_images, precision, orientation):
    pixels = region_images[orientation]
    ox = OcclusionExplainer(region_models[precision], fill="pad")
    e = ox.explain(pixels)
    assert e.target_label == "fractured" and e.method == "occlusion"
    top, left, h, w = REGION
    touches = (
        (e.positions[:, 0] < top + h)
        & (e.positions[:, 0] + ox.patch > top)
        & (e.positions[:, 1] < left + w)
        & (e.positions[:, 1] + ox.patch > left)
    )
    assert touches.any() and (~touches).any()
    if precision == "float32":  # outside the region (and the kernel's rim) nothing can move the output
        assert np.all(e.drops[~touches] == 0.0)
        assert e.drops.min() >= 0.0  # black over the region only darkens it
    else:  # int8: the same, up to one output quantisation step
        assert np.abs(e.drops[~touches]).max() <= 1.01 * ox.model.spec.output.scale
    assert e.drops[touches].max() > 0.02  # darkening the region the model reads lowers P(positive)
    assert touches[int(np.argmax(e.drops))]
    # the map, back on the original image: its maximum lies on the region
    heat = e.heatmap()
    assert heat.shape == pixels.shape[:2]
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    y0, x0, y1, x1 = _region_on_image(pixels.shape[:2])
    cell = ox.stride * max(pixels.shape[:2]) / SIZE  # one map cell, in image pixels
    assert y0 - cell <= y <= y1 + cell and x0 - cell <= x <= x1 + cell
    # the padding is cut away: the grid covers the image, one cell per stride of content
    assert e.grid().shape == grid_shape(e.cam.shape, pixels.shape[:2], ox.spec)
    assert e.cam.shape == (SIZE // ox.stride, SIZE // ox.stride)


def test_occlusion_hit_rate_with_boxes(region_models, region_images, fracatlas, tmp_path):
    """`edge explain --edge --boxes`: a box on the region is hit; the centre baseline misses it."""
    src = sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[0]
    h, w = region_images[0].shape[:2]
    y0, x0, y1, x1 = _region_on_image((h, w))
    boxes = tmp_path / "boxes.csv"
    with open(boxes, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["image_id", "x_center", "y_center", "width", "height"])
        wr.writerow([src.name, (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
    out = tmp_path / "loc"
    r = CliRunner().invoke(
        main,
        [
            "explain",
            "--edge",
            str(region_models["float32"].path),
            str(src),
            "--fill",
            "pad",
            "--boxes",
            str(boxes),
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "occlusion" and rep["overall"]["n"] == 1
    assert rep["overall"]["hit_rate"] == 1.0 and rep["overall"]["baseline_hit_rate"] == 0.0
    assert rep["overall"]["energy_inside"] > rep["overall"]["baseline_energy_inside"]
    assert rep["settings"]["patch"] == default_geometry((SIZE, SIZE))[0]


def test_int8_vs_float32_comparison(region_models, region_images, fracatlas, tmp_path):
    a = OcclusionExplainer(region_models["int8"], fill="pad")
    b = OcclusionExplainer(region_models["float32"], fill="pad")
    src = sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[:2]
    d = compare_occlusion(a, b, src, tmp_path / "cmp")
    assert len(d["images"]) == 2 and d["a"]["precision"] == "int8" and d["b"]["precision"] == "float32"
    ea, eb = a.explain(region_images[0]), b.explain(region_images[0])
    want = rank_correlation(ea.drops, eb.drops)
    assert d["images"][0]["spearman"] == pytest.approx(want)
    assert want > 0.5  # the same region dominates both
    assert d["spearman"]["min"] <= d["spearman"]["median"] <= 1.0
    assert "Spearman" in (tmp_path / "cmp" / "report.md").read_text()


def test_rank_correlation_by_hand():
    a = np.array([0.1, 0.5, 0.2, 0.9])
    assert rank_correlation(a, a * 3 + 1) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.8)  # one swapped pair: 1 - 6*2/60
    assert math.isnan(rank_correlation(a, np.zeros(4)))  # a flat map has no ranking
    with pytest.raises(ValueError):
        rank_correlation(a, a[:3])


@pytest.fixture(scope="module")
def multiclass_model(tmp_path_factory, region_images):
    """The known-answer graph with three softmax outputs (a rises, c falls with the brightness)."""
    from edge.core.preprocess import letterbox_u8

    spec = PreprocessSpec(size=(SIZE, SIZE))
    calib = np.stack([letterbox_u8(p, spec) for p in region_images])
    model, dense = _region_keras(3)
    dense.set_weights([np.array([[5.0, 0.0, -5.0]], np.float32), np.zeros(3, np.float32)])
    path = tmp_path_factory.mktemp("multi") / "m.tflite"
    return EdgeModel.load(_tflite(model, spec, "float32", calib, "multiclass", ["a", "b", "c"], path))


def test_multiclass_target_is_the_predicted_class(multiclass_model, region_images):
    m = multiclass_model
    ox = OcclusionExplainer(m, fill="pad")
    e = ox.explain(region_images[0])
    # brightness > 0 makes "a" the predicted class, and the default target of a multi-class model
    assert e.target_label == "a" == e.labels[int(np.argmax(e.probabilities))]
    assert e.drops.max() > 0 and e.drops.min() >= -1e-6  # darkening only lowers P(a)
    e2 = ox.explain(region_images[0], target="c")
    assert e2.target_label == "c" and e2.drops.min() < 0 and e2.drops.max() <= 1e-6  # ...and only raises P(c)


def test_fills_keep_brightness_or_not(region_images):
    """blur keeps the local brightness and removes fine structure; mean is flat; pad is black."""
    from edge.core.preprocess import letterbox_u8
    from edge.explain.occlusion import fill_canvas

    spec = PreprocessSpec(size=(224, 224))
    canvas = letterbox_u8(region_images[0], spec)
    top, left, nh, nw = letterbox_geometry(*region_images[0].shape[:2], spec.size)
    content = np.zeros(spec.size, bool)
    content[top : top + nh, left : left + nw] = True
    blur = fill_canvas(canvas, content, "blur", 32, 0).astype(np.float64)
    c = canvas.astype(np.float64)
    inner = (slice(top + 32, top + nh - 32), slice(left + 32, left + nw - 32))  # away from the padding
    assert abs(blur[inner].mean() - c[inner].mean()) < 0.05 * c[inner].mean()
    assert np.abs(np.diff(blur[inner], axis=1)).mean() < 0.3 * np.abs(np.diff(c[inner], axis=1)).mean()
    mean = fill_canvas(canvas, content, "mean", 32, 0)
    assert np.ptp(mean) == 0 and abs(float(mean[0, 0]) - c[content].mean()) <= 0.5
    assert np.all(fill_canvas(canvas, content, "pad", 32, 7) == 7)
    with pytest.raises(EdgeError, match="fill"):
        fill_canvas(canvas, content, "noise", 32, 0)


# --- the runtime's batches ----------------------------------------------------------------
def test_batched_invocation_gives_the_same_predictions(conv_int8, fracatlas):
    from conv_helpers import real_canvases

    m = EdgeModel.load(conv_int8.path)
    canv, _ = real_canvases(fracatlas, m.preprocess_spec, 3)
    one = m.predict_raw(canv)
    many = m.predict_raw(canv, batch=4)  # 6 canvases: a batch of 4, then one of 2
    assert m.batchable is True
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(m.predict_raw(canv[:1]), one[:1])  # back to batch one


# --- bad input ----------------------------------------------------------------------------
def test_tflite_without_spec_is_one_line(region_models, tmp_path, fracatlas):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    # the same model without its metadata entries (no spec): rebuilt from its flatbuffer
    data = region_models["float32"].path.read_bytes()
    bare = tmp_path / "bare.tflite"
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    m.metadata = []
    b = flatbuffers.Builder(len(data))
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    bare.write_bytes(bytes(b.Output()))
    img = sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[0]
    r = CliRunner().invoke(main, ["explain", "--edge", str(bare), str(img), "-o", str(tmp_path / "o")])
    assert r.exit_code != 0 and "no fracture-edge spec" in r.output and "bare.tflite" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) <= 2


def _other_size_model(path, region_images):
    """Same labels and task as the region model, a 32x32 input."""
    from edge.core._tf import keras
    from edge.core.preprocess import letterbox_u8

    spec = PreprocessSpec(size=(32, 32))
    x_in = keras.Input((32, 32, 1))
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x_in))
    calib = np.stack([letterbox_u8(p, spec) for p in region_images])
    return _tflite(keras.Model(x_in, out), spec, "float32", calib, "binary", ["fractured", "not_fractured"], path)


def test_bad_options_are_refused(region_models, multiclass_model, region_images, fracatlas, tmp_path):
    img = str(sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[0])
    edge = str(region_models["float32"].path)
    other_size = str(_other_size_model(tmp_path / "m32.tflite", region_images))
    cases = [
        (["--edge", edge, "--method", "gradcam", img], "not gradcam"),
        (["--method", "occlusion", img], "--edge"),
        (["--compare", edge, img], "--compare needs --edge"),
        (["--patch", "8", img], "occlusion settings"),
        (["--edge", edge, "--patch", "49", img], "does not fit"),
        (["--edge", edge, "--patch", "8", "--stride", "9", img], "stride"),
        (["--edge", edge, "--compare", str(multiclass_model.path), img], "different labels"),
        # same labels, another input size: position k would not be the same patch in both maps
        (["--edge", edge, "--compare", other_size, img], "different inputs (48x48 vs 32x32)"),
        (["--edge", edge, "--layer", "conv1", img], "occlusion has none"),
    ]
    for args, msg in cases:
        r = CliRunner().invoke(main, ["explain", *args, "-o", str(tmp_path / "o")])
        assert r.exit_code != 0 and msg in r.output, (args, r.output)
        assert "Traceback" not in r.output


def test_edge_explain_writes_occlusion_overlays(conv_int8, xp_like_images, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["explain", "--edge", str(conv_int8.path), *map(str, xp_like_images), "-o", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "explanations.json").read_text())
    assert data["method"] == "occlusion" and data["layer"] is None and data["model"]["precision"] == "int8"
    for item, src in zip(data["images"], xp_like_images, strict=True):
        assert (out / item["overlay"]).is_file() and item["file"] == str(src)
        assert len(item["grid"]) == item["grid_shape"][0]


@pytest.fixture(scope="module")
def xp_like_images(fracatlas):
    return sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[:2]


def test_explainer_refuses_other_methods(region_models, region_images):
    with pytest.raises(EdgeError, match="occlusion"):
        OcclusionExplainer(region_models["int8"]).explain(region_images[0], "gradcam")
