"""The runtime's quantisation and the parity vectors with zero-points that are not zero.

One tiny real model (random features, a head set so its probabilities spread over 0..1 on real
radiographs) is converted once to int8 with int8 input and output: x = u8/255 quantised to int8
has zero-point -128, and the sigmoid output too. Dropping either zero-point moves probabilities
by about 0.5, far beyond the tolerance here.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conv_helpers import make_bundle, real_canvases
from edge.core.errors import EdgeError
from edge.core.imageio import read_image
from edge.core.parity import TOLERANCE, argb_to_rgb, to_argb, write_vectors
from edge.core.preprocess import PreprocessSpec, letterbox_u8, normalize
from edge.core.runtime import EdgeModel
from edge.core.spec import SPEC_METADATA_NAME, ModelSpec, buffer_misalignments
from model_cache import TESTS, cached


@pytest.fixture(scope="module")
def rt_bundle(tmp_path_factory, fracatlas):
    from edge.core.bundle import load_bundle

    return cached(
        "rt_bundle",
        {"data": str(fracatlas), "seed": 5},
        lambda d: make_bundle(d / "bundle", fracatlas, seed=5),
        lambda d: load_bundle(d / "bundle"),
        tmp_path_factory.mktemp("rt_bundle"),
        sources=[TESTS / "conv_helpers.py"],
    )


def _convert_int8_io(bundle, out: Path) -> None:
    from convert.tflite import convert_bundle

    conv = convert_bundle(bundle, "int8", out=out, io_type="int8", keep_float=None, debug=False, report=False)
    assert conv.report["keep_float"] == []  # so the agreement figure (report_only below) did not shape the file


@pytest.fixture(scope="module")
def rt_int8(tmp_path_factory, rt_bundle) -> Path:
    # built once per mutation run (tests/model_cache.py); a runtime mutant only reads the file
    return cached(
        "rt_int8",
        {"bundle": rt_bundle.sha256, "builder": inspect.getsource(_convert_int8_io)},
        lambda d: _convert_int8_io(rt_bundle, d / "m_int8io.tflite"),
        lambda d: d / "m_int8io.tflite",
        tmp_path_factory.mktemp("rt_int8"),
        report_only=("convert.tflite.agreement",),
    )


def _convert_to(bundle, out: Path, precision: str, io_type: str) -> None:
    from convert.tflite import convert_bundle

    conv = convert_bundle(bundle, precision, out=out, io_type=io_type, keep_float=None, debug=False, report=False)
    assert conv.report["keep_float"] == []  # so the agreement figure (report_only below) did not shape the file


def _other(tmp_path_factory, rt_bundle, precision: str, io_type: str) -> Path:
    name = f"m_{precision}_{io_type}.tflite"
    return cached(
        f"rt_{precision}_{io_type}",
        {"bundle": rt_bundle.sha256, "builder": inspect.getsource(_convert_to), "precision": precision, "io": io_type},
        lambda d: _convert_to(rt_bundle, d / name, precision, io_type),
        lambda d: d / name,
        tmp_path_factory.mktemp("rt_other"),
        report_only=("convert.tflite.agreement",),
    )


@pytest.fixture(scope="module")
def rt_uint8(tmp_path_factory, rt_bundle) -> Path:
    """The same bundle as an int8 model with uint8 input and output: both zero-points are 0."""
    return _other(tmp_path_factory, rt_bundle, "int8", "uint8")


@pytest.fixture(scope="module")
def rt_fp32(tmp_path_factory, rt_bundle) -> Path:
    """The same bundle as a float32 model: no quantisation at either end."""
    return _other(tmp_path_factory, rt_bundle, "float32", "uint8")


@pytest.fixture(scope="module")
def rt_data(fracatlas, rt_bundle):
    return real_canvases(fracatlas, rt_bundle.spec, 10)


def with_spec(src: Path, dest: Path, **changes) -> Path:
    """A copy of the .tflite whose embedded spec has ``changes`` (a dict for a tensor changes its fields)."""
    data = src.read_bytes()
    spec = ModelSpec.read(data, src)
    for k, v in changes.items():
        changes[k] = replace(getattr(spec, k), **v) if isinstance(v, dict) else v
    dest.write_bytes(replace(spec, **changes).embed(data))
    return dest


def with_metadata(src: Path, dest: Path, entries: dict[str, bytes]) -> Path:
    """A copy of the .tflite whose metadata is exactly ``entries`` (name -> raw bytes), nothing checked."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(src.read_bytes(), 0))
    model.metadata = []
    for name, raw in entries.items():
        buf = fb.BufferT()
        buf.data = np.frombuffer(raw, dtype=np.uint8)
        model.buffers.append(buf)
        entry = fb.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dest.write_bytes(bytes(b.Output()))
    return dest


def test_the_model_has_nonzero_zero_points(rt_int8):
    m = EdgeModel.load(rt_int8)
    assert m.spec.input.dtype == "int8" and m.spec.input.zero_point == -128
    assert m.spec.output.dtype == "int8" and m.spec.output.zero_point != 0
    assert m.precision == "int8" and m.task == "binary" and m.threshold == 0.5


def test_int8_io_probabilities_follow_the_float_model(rt_bundle, rt_int8, rt_data):
    canv, _ = rt_data
    p_keras = rt_bundle.predict_proba(normalize(canv, rt_bundle.spec))[:, 0]
    p_edge = EdgeModel.load(rt_int8).predict_canvases(canv)
    assert p_keras.std() > 0.1 and p_keras.min() < 0.3 and p_keras.max() > 0.7  # a model whose output varies
    # int8 moves this model's probabilities by up to ~0.06; a dropped zero-point moves them by ~0.5
    assert np.abs(p_edge[:, 0] - p_keras).max() < 0.1
    assert np.corrcoef(p_edge[:, 0], p_keras)[0, 1] > 0.98
    np.testing.assert_allclose(p_edge.sum(axis=1), 1.0, atol=1e-6)


def test_int8_input_is_the_canvas_shifted_by_the_zero_point(rt_bundle, rt_int8, rt_data):
    # x = u8/255 with scale 1/255 and zero-point -128: q = u8 - 128, exactly
    m = EdgeModel.load(rt_int8)
    canv, _ = rt_data
    q = m.quantize_input(normalize(canv[0], rt_bundle.spec))
    assert q.dtype == np.int8 and q.shape == (1, 48, 48, 1)
    np.testing.assert_array_equal(q[0, :, :, 0].astype(np.int16), canv[0].astype(np.int16) - 128)


def test_output_is_dequantised_with_its_zero_point(rt_int8):
    m = EdgeModel.load(rt_int8)
    s, zp = m.spec.output.scale, m.spec.output.zero_point
    raw = np.array([[-128], [0], [127]], np.int8)
    np.testing.assert_allclose(m.dequantize_output(raw)[:, 0], [(-128 - zp) * s, (0 - zp) * s, (127 - zp) * s], rtol=1e-6)


def test_predict_raw_is_invoke_of_the_quantised_canvas(rt_bundle, rt_int8, rt_data):
    m = EdgeModel.load(rt_int8)
    canv, _ = rt_data
    raw = m.invoke_raw(m.quantize_input(normalize(canv[1], rt_bundle.spec)))
    s, zp = m.spec.output.scale, m.spec.output.zero_point
    got = m.predict_raw(canv[1])  # a single 2-D canvas is a batch of one
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx((int(raw.reshape(-1)[0]) - zp) * s, rel=1e-6)
    with pytest.raises(EdgeError, match="48x48"):
        m.predict_raw(np.zeros((1, 40, 48), np.uint8))
    assert m.predict_raw(np.zeros((0, 48, 48), np.uint8)).shape == (0, 1)


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"input": {"zero_point": 0}}, "input quantisation"),
        ({"input": {"scale": 1 / 254}}, "input quantisation"),
        ({"input": {"dtype": "uint8"}}, "input dtype"),
        ({"input": {"shape": [1, 48, 47, 1]}}, "input shape"),
    ],
)
def test_a_spec_that_misdescribes_the_input_is_refused(rt_int8, tmp_path, changes, words):
    lie = with_spec(rt_int8, tmp_path / "lie.tflite", **changes)
    with pytest.raises(EdgeError, match=f"model spec says {words}|model spec {words}") as e:
        EdgeModel.load(lie)
    assert e.value.path == str(lie)  # the one line names the file


def test_a_scale_within_rounding_of_the_real_one_is_accepted(rt_int8, tmp_path):
    real = ModelSpec.read(rt_int8.read_bytes(), rt_int8).input.scale
    EdgeModel.load(with_spec(rt_int8, tmp_path / "ok.tflite", input={"scale": real * (1 + 1e-7)}))


def test_check_spec_refuses_what_consumers_cannot_use(rt_int8):
    spec = ModelSpec.read(rt_int8.read_bytes(), rt_int8)
    good = spec.to_dict()
    assert ModelSpec.from_dict(dict(good), "m") == spec
    assert ModelSpec.from_dict({**good, "version": 1}, "m") == spec
    bad = [
        {**good, "format": "other"},
        {**good, "version": 2},
        {**good, "positive_label": "elbow"},
        *[
            {k: v for k, v in good.items() if k != key}
            for key in ("task", "labels", "preprocess", "input", "output", "threshold")
        ],
    ]
    for spec in bad:
        with pytest.raises(EdgeError, match="^m: "):
            ModelSpec.from_dict(spec, "m")
    multi = {**good, "task": "multiclass", "positive_label": None}
    assert ModelSpec.from_dict(multi, "m").task == "multiclass"


def test_only_the_embedded_spec_is_read_and_it_must_be_json(rt_int8, tmp_path):
    # the .json next to the file is a copy for people: a model without an embedded spec is refused
    # even when a (broken) sidecar sits beside it, and an embedded spec that is not JSON is refused
    bare = with_metadata(rt_int8, tmp_path / "bare.tflite", {})
    (tmp_path / "bare.json").write_text("{broken")
    with pytest.raises(EdgeError, match="carries no fracture-edge spec"):
        EdgeModel.load(bare)
    broken = with_metadata(rt_int8, tmp_path / "broken.tflite", {SPEC_METADATA_NAME: b"{broken"})
    with pytest.raises(EdgeError, match="broken.tflite: the embedded model spec is not valid JSON"):
        EdgeModel.load(broken)


@pytest.mark.parametrize("keep", [16, 64, 1024])
def test_a_truncated_tflite_is_a_one_line_error(rt_int8, tmp_path, keep):
    # cut short after its TFL3 identifier: the flatbuffer's offsets point past the end (was a struct.error traceback)
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(rt_int8.read_bytes()[:keep])
    with pytest.raises(EdgeError, match=r"cut\.tflite: the \.tflite is truncated or corrupt") as e:
        EdgeModel.load(cut)
    assert "\n" not in str(e.value)


def test_summary_names_the_model(rt_int8):
    m = EdgeModel.load(rt_int8, threads=1)
    assert m.threads == 1
    assert m.summary() == f"{rt_int8.name} (int8, binary, 2 classes, 48x48x1, {rt_int8.stat().st_size / 1e6:.2f} MB)"


# ---- weights stay where the schema puts them ----------------------------------------------------
ASSETS = Path(__file__).resolve().parents[1] / "android_demo" / "app" / "src" / "main" / "assets"


def _repack_one_byte_aligned(data: bytes) -> bytes:
    """The model re-packed by the generated flatbuffer object API as is (its Buffer.Pack aligns
    data to one byte): what ModelSpec.embed wrote before it aligned the buffers."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_converted_models_keep_their_weights_16_byte_aligned(rt_int8):
    # the converter writes Buffer.data on 16-byte boundaries (schema: force_align 16); the spec
    # embedding re-packs the whole flatbuffer and must not move them to 4, 8 or 12 mod 16
    assert buffer_misalignments(rt_int8.read_bytes()) == []


@pytest.mark.parametrize("name", ["fracture_int8.tflite", "fracture_fp16.tflite"])
def test_embedding_realigns_weights_and_keeps_the_numbers(name, fracatlas):
    shipped = (ASSETS / name).read_bytes()
    spec = ModelSpec.read(shipped, name)
    unaligned = _repack_one_byte_aligned(shipped)
    assert len(buffer_misalignments(unaligned)) >= 10  # the precondition: weights off their boundaries
    embedded = spec.embed(unaligned)
    assert buffer_misalignments(embedded) == []
    assert ModelSpec.read(embedded, name) == spec
    canvases, _ = real_canvases(fracatlas, spec.preprocess, 2)
    outs = []
    for data in (unaligned, embedded):  # the same weights, read from other addresses: the same numbers
        outs.append(EdgeModel(ASSETS / name, data, spec, threads=1).predict_raw(canvases))
    np.testing.assert_array_equal(outs[0], outs[1])


# ---- parity vectors -------------------------------------------------------------------------
def test_argb_of_float_and_grey_pixels():
    grey = np.array([[0.0, 100.5, 254.6, 300.0]])
    argb = to_argb(grey).view(np.uint32)
    assert [hex(v) for v in argb[0]] == ["0xff000000", "0xff656565", "0xffffffff", "0xffffffff"]
    rgba = np.array([[[1, 2, 3, 4]]], np.uint8)
    assert hex(to_argb(rgba).view(np.uint32)[0, 0]) == "0xff010203"
    assert argb_to_rgb(to_argb(rgba)).tolist() == [[[1, 2, 3]]]


def check_int8_case(d: Path, case: dict, px: np.ndarray, m: EdgeModel, threshold: float) -> None:
    """Every file of one case of an int8-in, int8-out binary model, against what the phone must compute:
    the canvas, x = canvas / 255, q = canvas - 128 (scale 1/255, zero-point -128), P = (raw - zp) * scale."""
    stem, key = case["name"], f"m0-{m.precision}"
    assert set(case) == {"name", "width", "height", "argb", "letterbox_u8", "input_f32", "input_q", "output_raw", "expected"}
    assert (case["height"], case["width"]) == px.shape[:2]
    assert (case["argb"], case["letterbox_u8"], case["input_f32"], case["input_q"], case["output_raw"]) == (
        f"{stem}.argb.bin",
        f"{key}-{stem}.u8.bin",
        f"{key}-{stem}.f32.bin",
        f"{key}-{stem}.q.bin",
        f"{key}-{stem}.out.bin",
    )
    c = letterbox_u8(px, m.preprocess_spec)
    assert (d / case["letterbox_u8"]).read_bytes() == c.tobytes()
    q = np.frombuffer((d / case["input_q"]).read_bytes(), np.int8)
    np.testing.assert_array_equal(q.astype(np.int16), c.reshape(-1).astype(np.int16) - 128)
    x = np.frombuffer((d / case["input_f32"]).read_bytes(), "<f4")
    np.testing.assert_allclose(x, c.reshape(-1) / 255.0, rtol=1e-6)
    raw = np.frombuffer((d / case["output_raw"]).read_bytes(), np.int8)
    out = m.spec.output
    assert raw.shape == (1,) and set(case["expected"]) == {"probabilities", "label", "decision"}
    p = case["expected"]["probabilities"]
    assert list(p) == ["fractured", "not_fractured"]
    assert p["fractured"] == pytest.approx((int(raw[0]) - out.zero_point) * out.scale, abs=1e-6)
    assert p["not_fractured"] == pytest.approx(1 - p["fractured"], abs=1e-6)
    decision = p["fractured"] >= threshold
    assert case["expected"]["decision"] is decision
    assert case["expected"]["label"] == ("fractured" if decision else "not_fractured")


def test_vectors_of_an_int8_io_model_with_the_threshold_at_a_score(rt_int8, fracatlas, tmp_path):
    images = _readable(fracatlas, 2)
    m0 = EdgeModel.load(rt_int8)
    u8 = letterbox_u8(read_image(images[0]).pixels, m0.preprocess_spec)
    p0 = float(m0.predict_canvases(u8[None])[0, 0])
    # the threshold is exactly the first image's score: it must be called fractured (>=)
    m = EdgeModel.load(with_spec(rt_int8, tmp_path / "thr.tflite", threshold=p0))
    # no size or spec variants: the two-model test below holds those
    entries = write_vectors(m, images, tmp_path / "vec", spec_variants=False, size_variants=False)
    d = tmp_path / "vec"
    assert json.loads((d / "manifest.json").read_text()) == entries and len(entries) == 1
    manifest = entries[0]
    assert manifest["tolerance"] == TOLERANCE and manifest["model_sha256"] == m.sha256
    assert manifest["spec"] == m.spec.to_dict() and manifest["spec"]["threshold"] == p0
    assert [c["name"] for c in manifest["cases"]] == [p.stem for p in images]
    first = manifest["cases"][0]
    assert first["expected"]["decision"] is True and first["expected"]["label"] == "fractured"
    assert first["expected"]["probabilities"]["fractured"] == pytest.approx(p0, abs=1e-7)
    for case, path in zip(manifest["cases"], images, strict=True):
        check_int8_case(d, case, read_image(path).pixels, m, p0)


def test_uint8_io_and_float_models_follow_the_float_model(rt_bundle, rt_uint8, rt_fp32, rt_data):
    canv, _ = rt_data
    p_keras = rt_bundle.predict_proba(normalize(canv, rt_bundle.spec))[:, 0]
    assert np.abs(EdgeModel.load(rt_uint8).predict_canvases(canv)[:, 0] - p_keras).max() < 0.1
    assert np.abs(EdgeModel.load(rt_fp32).predict_canvases(canv)[:, 0] - p_keras).max() < 1e-5


def test_uint8_input_is_the_canvas_itself_and_the_output_is_steps_of_1_256(rt_bundle, rt_uint8, rt_data):
    # TFLite's uint8 sigmoid output is fixed at scale 1/256, zero-point 0; x = u8/255 at scale 1/255, zero-point 0
    m = EdgeModel.load(rt_uint8)
    assert (m.spec.input.dtype, m.spec.input.zero_point, m.spec.output.dtype, m.spec.output.zero_point) == (
        "uint8",
        0,
        "uint8",
        0,
    )
    canv, _ = rt_data
    q = m.quantize_input(normalize(canv[0], rt_bundle.spec))
    assert q.dtype == np.uint8 and q.shape == (1, 48, 48, 1)
    np.testing.assert_array_equal(q[0, :, :, 0], canv[0])
    got = m.dequantize_output(np.array([[0], [128], [255]], np.uint8))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0], [0.0, 0.5, 255 / 256], atol=1e-7)


def test_a_float_model_takes_and_gives_float32(rt_bundle, rt_fp32, rt_data):
    m = EdgeModel.load(rt_fp32)
    assert m.spec.input.scale is None and m.spec.output.scale is None
    canv, _ = rt_data
    x = normalize(canv[2], rt_bundle.spec).astype(np.float64)
    q = m.quantize_input(x)
    assert q.dtype == np.float32 and q.shape == (1, 48, 48, 1)
    np.testing.assert_array_equal(q[0, :, :, 0], x[:, :, 0].astype(np.float32))
    np.testing.assert_array_equal(m.quantize_input(x[None]), q)  # a batch of one is the same input
    raw = np.array([[0.25], [0.75]], np.float64)
    out = m.dequantize_output(raw)
    assert out.dtype == np.float32 and out[:, 0].tolist() == [0.25, 0.75]


def test_int8_quantisation_rounds_and_saturates(rt_int8):
    # scale 1/255, zero-point -128: q = round(255 x) - 128, clipped to int8
    m = EdgeModel.load(rt_int8)
    x = np.full((48, 48, 1), 0.5, np.float32)
    x[0, 0, 0], x[0, 1, 0], x[0, 2, 0], x[0, 3, 0] = -1.0, 2.0, 3 / 255, 254.6 / 255
    q = m.quantize_input(x)[0, :, :, 0].astype(np.int16)
    assert q[0, :4].tolist() == [-128, 127, 3 - 128, 255 - 128]
    assert int(q[1, 1]) in (-1, 0)  # 0.5 is 127.5 steps: within half a step either way (the float32 scale is not 1/255 exactly)


def _readable(fracatlas: Path, n: int) -> list[Path]:
    good = []
    for p in sorted((fracatlas / "test" / "fractured").glob("*.jpg")):
        try:
            read_image(p)
        except EdgeError:
            continue
        good.append(p)
        if len(good) == n:
            break
    return good


def test_vectors_of_two_models_with_the_size_and_spec_variants(rt_int8, rt_fp32, fracatlas, tmp_path):
    images = _readable(fracatlas, 2)
    m8, m32 = EdgeModel.load(rt_int8), EdgeModel.load(rt_fp32)
    d = tmp_path / "vec"
    entries = write_vectors([m8, m32], images, d)
    stem = images[0].stem
    names = [images[0].stem, images[1].stem, f"{stem}_large", f"{stem}_small"]
    assert len(entries) == 6  # two models, then four preprocessing-only specs
    h, w = read_image(images[0]).pixels.shape[:2]
    for e in entries:
        assert (e["format"], e["version"], e["tolerance"]) == ("fracture-edge/parity-vectors", 1, TOLERANCE)
        assert [c["name"] for c in e["cases"]] == names
        assert [(c["height"], c["width"]) for c in e["cases"][2:]] == [
            (6 * h, 6 * w),
            (round(h * 150 / max(h, w)), round(w * 150 / max(h, w))),
        ]
    # the ARGB files: opaque grey, 0xFFgggggg little-endian, as Bitmap.getPixels gives them
    px = np.asarray(read_image(images[0]).pixels)
    argb = np.frombuffer((d / f"{stem}.argb.bin").read_bytes(), "<u4").reshape(px.shape[:2])
    grey = px if px.ndim == 2 else px[..., 0]
    np.testing.assert_array_equal(argb, 0xFF000000 + grey.astype(np.uint32) * 0x010101)
    big = np.frombuffer((d / f"{stem}_large.argb.bin").read_bytes(), "<u4")
    assert big.size == 36 * h * w and np.all(big >> 24 == 0xFF)
    e8, e32 = entries[0], entries[1]
    assert (e8["model_file"], e8["model_sha256"]) == (rt_int8.name, m8.sha256)
    assert (e32["model_file"], e32["model_sha256"]) == (rt_fp32.name, m32.sha256)
    assert e32["spec"] == m32.spec.to_dict()
    for e, key in ((e8, "m0-int8"), (e32, "m1-float32")):
        c = e["cases"][0]
        assert (c["argb"], c["letterbox_u8"], c["input_f32"], c["output_raw"]) == (
            f"{stem}.argb.bin",
            f"{key}-{stem}.u8.bin",
            f"{key}-{stem}.f32.bin",
            f"{key}-{stem}.out.bin",
        )
    assert e8["cases"][0]["input_q"] == f"m0-int8-{stem}.q.bin" and "input_q" not in e32["cases"][0]
    # the float model's raw output is its probability, as little-endian float32
    c = e32["cases"][1]
    raw = np.frombuffer((d / c["output_raw"]).read_bytes(), "<f4")
    assert raw.shape == (1,) and c["expected"]["probabilities"]["fractured"] == pytest.approx(float(raw[0]), abs=1e-7)
    canvas = letterbox_u8(read_image(images[1]).pixels, m32.preprocess_spec)
    assert c["expected"]["probabilities"]["fractured"] == pytest.approx(float(m32.predict_canvases(canvas[None])[0, 0]), abs=1e-7)
    assert c["expected"]["decision"] is (c["expected"]["probabilities"]["fractured"] >= 0.5)
    # preprocessing-only specs: no model, the phone's other normalisations
    base = m8.spec.to_dict()
    for e, key, arch, size, ch in zip(
        entries[2:],
        ("caffe3", "caffe1", "caffe3_256x192", "lite3"),
        ("vgg16", "resnet50", "resnet50", "efficientnet_lite0"),
        ((224, 224), (224, 224), (256, 192), (224, 224)),
        (3, 1, 3, 3),
        strict=True,
    ):
        pre = PreprocessSpec.for_arch(arch, size, channels=ch)
        s = e["spec"]
        assert s["model_id"] == f"preprocess-only-{key}" and s["precision"] == "fp32"
        assert s["preprocess"] == pre.to_dict()
        assert s["input"] == {"shape": [1, size[0], size[1], ch], "dtype": "float32"}
        assert s["output"] == {"shape": base["output"]["shape"], "dtype": "float32", "activation": base["output"]["activation"]}
        assert s["labels"] == base["labels"] and s["threshold"] == base["threshold"]
        assert "model_file" not in e and "model_sha256" not in e
        c = e["cases"][0]
        assert set(c) == {"name", "width", "height", "argb", "letterbox_u8", "input_f32"}
        u8 = np.frombuffer((d / c["letterbox_u8"]).read_bytes(), np.uint8)
        assert u8.size == size[0] * size[1] and c["letterbox_u8"] == f"{key}-{stem}.u8.bin"  # the grey canvas
        x = np.frombuffer((d / c["input_f32"]).read_bytes(), "<f4")
        assert x.size == size[0] * size[1] * ch
        # grey replicated to each channel, minus that channel's mean (caffe: ImageNet's, BGR order), over its std
        want = (u8.reshape(*size, 1).astype(np.float32) - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
        np.testing.assert_allclose(x, want.reshape(-1), atol=1e-4)
    assert (d / "dicom" / "manifest.json").is_file() and (d / "png16" / "manifest.json").is_file()
    assert base["threshold"] == 0.5 and m8.spec.to_dict() == e8["spec"]


def test_vectors_without_variants(rt_int8, fracatlas, tmp_path):
    """One image, no size or spec variants: the quick test that holds every field and file of the set."""
    images = _readable(fracatlas, 1)
    m = EdgeModel.load(rt_int8)
    d = tmp_path / "v"
    entries = write_vectors(m, images, d, spec_variants=False, size_variants=False)
    assert json.loads((d / "manifest.json").read_text()) == entries
    assert len(entries) == 1 and [c["name"] for c in entries[0]["cases"]] == [images[0].stem]
    assert sorted(p.name for p in d.glob("*.argb.bin")) == [f"{images[0].stem}.argb.bin"]
    e = entries[0]
    assert set(e) == {"format", "version", "spec", "tolerance", "cases", "model_file", "model_sha256"}
    assert (e["format"], e["version"], e["tolerance"]) == ("fracture-edge/parity-vectors", 1, TOLERANCE)
    assert (e["spec"], e["model_file"], e["model_sha256"]) == (m.spec.to_dict(), rt_int8.name, m.sha256)
    px = np.asarray(read_image(images[0]).pixels)
    argb = np.frombuffer((d / f"{images[0].stem}.argb.bin").read_bytes(), "<u4").reshape(px.shape[:2])
    grey = px if px.ndim == 2 else px[..., 0]
    np.testing.assert_array_equal(argb, 0xFF000000 + grey.astype(np.uint32) * 0x010101)  # opaque grey, Bitmap.getPixels
    check_int8_case(d, e["cases"][0], px, m, m.spec.threshold)
    assert (d / "dicom" / "manifest.json").is_file() and (d / "png16" / "manifest.json").is_file()


def test_vectors_of_a_uint8_io_model_carry_its_quantised_input(rt_uint8, fracatlas, tmp_path):
    # a uint8-input model's quantised input is the canvas itself: the phone feeds those bytes
    images = _readable(fracatlas, 1)
    m = EdgeModel.load(rt_uint8)
    d = tmp_path / "v"
    (case,) = write_vectors(m, images, d, spec_variants=False, size_variants=False)[0]["cases"]
    q = np.frombuffer((d / case["input_q"]).read_bytes(), np.uint8)
    u8 = np.frombuffer((d / case["letterbox_u8"]).read_bytes(), np.uint8)
    np.testing.assert_array_equal(q, u8)
    raw = np.frombuffer((d / case["output_raw"]).read_bytes(), np.uint8)
    assert raw.shape == (1,) and case["expected"]["probabilities"]["fractured"] == pytest.approx(raw[0] / 256)


def test_spec_variants_copy_the_first_models_contract(rt_int8, fracatlas, tmp_path):
    # one model is enough for the preprocess-only variants; they keep its labels, threshold and source
    images = _readable(fracatlas, 1)
    m = EdgeModel.load(with_spec(rt_int8, tmp_path / "thr.tflite", threshold=0.25))
    entries = write_vectors(m, images, tmp_path / "v", spec_variants=True, size_variants=False)
    assert [e["spec"]["model_id"] for e in entries[1:]] == [
        f"preprocess-only-{k}" for k in ("caffe3", "caffe1", "caffe3_256x192", "lite3")
    ]
    for e in entries[1:]:
        assert "model_sha256" not in e and all("input_q" not in c and "expected" not in c for c in e["cases"])
        same = {k: v for k, v in e["spec"].items() if k not in ("model_id", "precision", "preprocess", "input", "output")}
        assert same == {k: v for k, v in m.spec.to_dict().items() if k in same} and same["threshold"] == 0.25
