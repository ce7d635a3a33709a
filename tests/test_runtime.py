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
from edge.core.runtime import EdgeModel
from edge.core.spec import ModelSpec, sidecar_path


def test_spec_comes_from_the_file(conv_bundle, conv_int8):
    m = EdgeModel.load(conv_int8.path)
    assert m.spec == ModelSpec.read(conv_int8.path.read_bytes(), conv_int8.path)
    assert m.spec.bundle_sha256 == conv_bundle.sha256 and m.threshold == conv_bundle.threshold
    assert m.labels == conv_bundle.labels and m.positive_label == "fractured"
    assert m.preprocess_spec == conv_bundle.spec
    assert m.spec.input.dtype == "uint8" and m.spec.input.shape == [1, 48, 48, 1]
    assert m.spec.output.activation == "sigmoid"
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


def _without_spec(src, dest):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(src.read_bytes(), 0))
    model.metadata = [e for e in model.metadata if e.name not in (b"fracture_edge_spec", "fracture_edge_spec")]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dest.write_bytes(bytes(b.Output()))
    return dest


def test_only_the_embedded_spec_counts(conv_int8, tmp_path):
    """The .json beside the file is a copy for people; a file without an embedded spec is refused
    even with a .json next to it (the spec a signature covers is the one inside)."""
    embedded = ModelSpec.read(conv_int8.path.read_bytes(), conv_int8.path)
    assert sidecar_path(conv_int8.path).read_bytes() == embedded.to_json()
    bare = _without_spec(conv_int8.path, tmp_path / "bare.tflite")
    assert ModelSpec.read(bare.read_bytes(), bare) is None
    sidecar_path(bare).write_bytes(embedded.to_json())
    with pytest.raises(EdgeError, match="carries no fracture-edge spec"):
        EdgeModel.load(bare)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d: d["input"].update(dtype="float32"), "input dtype float32"),
        (lambda d: d["input"].update(shape=[1, 49, 48, 1]), "input shape"),
        (lambda d: d["input"].update(scale=0.5), "input quantisation"),
        (lambda d: d.pop("threshold"), "lacks threshold"),
        (lambda d: d.update(threshold=None), "threshold must be a probability"),
        (lambda d: d.update(threshold=1.2), "threshold must be a probability"),
        (lambda d: d.update(positive_label="broken"), "positive_label"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d["preprocess"].update(std=[0]), "preprocess"),
        (lambda d: d["output"].pop("scale"), "'output' tensor is malformed"),
    ],
)
def test_a_spec_that_lies_is_refused(conv_int8, tmp_path, edit, words):
    data = conv_int8.path.read_bytes()
    d = ModelSpec.read(data, conv_int8.path).to_dict()
    edit(d)
    spec = ModelSpec.__new__(ModelSpec)  # embed the edited JSON as it is, bypassing the builder
    object.__setattr__(spec, "to_json", lambda: json.dumps(d).encode())
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(ModelSpec.embed(spec, data))
    with pytest.raises(EdgeError, match=words) as e:
        EdgeModel.load(bad)
    assert "\n" not in str(e.value)


def test_not_a_tflite(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(EdgeError, match="not a TFLite model"):
        EdgeModel.load(p)
    with pytest.raises(EdgeError, match="no such .tflite"):
        EdgeModel.load(tmp_path / "missing.tflite")
