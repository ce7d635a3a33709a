"""edge.core.runtime: a converted model runs in LiteRT from its own embedded spec."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conv_helpers import real_canvases

from edge.core.errors import EdgeError
from edge.core.metrics import auroc
from edge.core.preprocess import normalize
from edge.core.runtime import EdgeModel, read_embedded_spec, sidecar_path


def test_spec_comes_from_the_file(conv_bundle, conv_int8):
    m = EdgeModel.load(conv_int8.path)
    assert m.spec == read_embedded_spec(conv_int8.path.read_bytes())
    assert m.spec["bundle_sha256"] == conv_bundle.sha256
    assert m.labels == conv_bundle.labels and m.positive_label == "fractured"
    assert m.preprocess_spec == conv_bundle.spec
    assert m.spec["input"]["dtype"] == "uint8" and m.spec["input"]["shape"] == [1, 48, 48, 1]
    assert m.spec["output"]["activation"] == "sigmoid"
    assert m.sha256 == hashlib.sha256(conv_int8.path.read_bytes()).hexdigest()
    assert m.threads == 2


def test_input_quantisation_is_the_canvas_itself(conv_int8, fracatlas, conv_bundle):
    # custom-style spec x = u8/255 with input scale 1/255, zero point 0: the uint8 input IS the canvas
    m = EdgeModel.load(conv_int8.path)
    canv, _ = real_canvases(fracatlas, conv_bundle.spec, 2)
    q = m.quantize_input(normalize(canv[0], conv_bundle.spec))
    assert q.dtype == np.uint8 and q.shape == (1, 48, 48, 1)
    np.testing.assert_array_equal(q[0, :, :, 0], canv[0])


def test_int8_agrees_with_keras_on_real_radiographs(conv_bundle, conv_int8, fracatlas):
    canv, y = real_canvases(fracatlas, conv_bundle.spec, 16)
    p_keras = conv_bundle.predict_proba(normalize(canv, conv_bundle.spec))[:, 0]
    p_edge = EdgeModel.load(conv_int8.path).predict_canvases(canv)
    assert p_edge.shape == (len(canv), 2)
    np.testing.assert_allclose(p_edge.sum(axis=1), 1.0, atol=1e-6)
    assert p_keras.std() > 0.1  # the test model's output really varies
    assert np.abs(p_edge[:, 0] - p_keras).max() < 0.03
    assert np.corrcoef(p_edge[:, 0], p_keras)[0, 1] > 0.995
    assert abs(auroc(y == 1, p_edge[:, 0]) - auroc(y == 1, p_keras)) < 0.03


def test_builtin_kernels_compute_the_same_int8_model(conv_int8, fracatlas, conv_bundle):
    """xnnpack=False (the benchmark's comparison path) runs TFLite's own int8 kernels: the same
    model, so the same outputs up to a rounding step of the uint8 output."""
    canv, _ = real_canvases(fracatlas, conv_bundle.spec, 8)
    fast = EdgeModel.load(conv_int8.path).predict_canvases(canv)
    builtin = EdgeModel.load(conv_int8.path, xnnpack=False).predict_canvases(canv)
    assert np.abs(fast - builtin).max() <= 2.5 / 255


def test_sidecar_is_the_fallback(conv_int8, tmp_path):
    from ai_edge_litert import schema_py_generated as fb
    import flatbuffers

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(conv_int8.path.read_bytes(), 0))
    model.metadata = [e for e in model.metadata if e.name not in (b"fracture_edge_spec", "fracture_edge_spec")]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(bytes(b.Output()))
    assert read_embedded_spec(bare.read_bytes()) is None
    with pytest.raises(EdgeError, match="carries no fracture-edge spec"):
        EdgeModel.load(bare)
    sidecar_path(bare).write_text(sidecar_path(conv_int8.path).read_text())
    m = EdgeModel.load(bare)
    assert m.labels == ["fractured", "not_fractured"]
    # a sidecar that lies about the tensors is refused, not silently used
    bad = json.loads(sidecar_path(conv_int8.path).read_text())
    bad["input"]["dtype"] = "float32"
    sidecar_path(bare).write_text(json.dumps(bad))
    with pytest.raises(EdgeError, match="input dtype float32"):
        EdgeModel.load(bare)


def test_not_a_tflite(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(EdgeError, match="not a TFLite model"):
        EdgeModel.load(p)
    with pytest.raises(EdgeError, match="no such .tflite"):
        EdgeModel.load(tmp_path / "missing.tflite")
