"""The native-resolution architecture (custom448): stride-4 patchify stem at 448 px, about the
compute of the 224-px custom CNN, flat for QAT, fully on the GPU delegate, int8 with parity vectors."""

from __future__ import annotations

import numpy as np
import pytest

from convert.gpu import gpu_problems, model_ops
from edge.core._tf import keras, tf
from edge.core.architectures import build_custom448, get_arch
from edge.core.preprocess import PreprocessSpec

TINY_WIDTHS = (8, 8, 16, 16, 16)


def _macs(model) -> int:
    """Multiply-accumulates of the Conv2D and Dense layers (what dominates a forward pass)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += int(h * w * kh * kw * cin * cout)
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def test_custom448_is_a_stride4_net_with_a_14x14_cam_grid_at_the_224_cost():
    info = get_arch("custom448")
    assert info.default_size == 448 and info.gradcam_layer == "features_relu"
    spec = PreprocessSpec.for_arch("custom448", info.default_size)
    m448 = info.build(spec.input_shape, 1)
    m224 = get_arch("custom").build((224, 224, 1), 1)
    stem = m448.get_layer("stem_conv")
    assert stem.kernel_size == (4, 4) and stem.strides == (4, 4) and stem.output.shape[1:3] == (112, 112)
    assert m448.get_layer(info.gradcam_layer).output.shape[1:3] == (14, 14)  # 224 px custom: 7x7
    # flat, and every BatchNorm sits right after a Conv2D (tfmot folds only that pair)
    assert not any(isinstance(layer, keras.Model) for layer in m448.layers)
    for layer in m448.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert isinstance(layer.inbound_nodes[0].inbound_layers, keras.layers.Conv2D), layer.name
    ratio = _macs(m448) / _macs(m224)
    # the stages see the same 112x112 map as the 224-px net; only the last stage runs at 14x14 instead of 7x7
    assert 1.0 < ratio < 1.5, ratio
    assert abs(m448.count_params() - m224.count_params()) / m224.count_params() < 0.01


def test_custom448_quantize_model_wraps_it_and_it_runs():
    import tensorflow_model_optimization as tfmot

    model = build_custom448((448, 448, 1), 1, widths=TINY_WIDTHS)
    q = tfmot.quantization.keras.quantize_model(model)
    assert any(isinstance(layer, tfmot.quantization.keras.QuantizeWrapperV2) for layer in q.layers)
    x = np.random.default_rng(0).random((1, 448, 448, 1), dtype=np.float32)
    assert q(x).shape == (1, 1) and np.isfinite(q(x).numpy()).all()


def test_custom448_runs_entirely_on_the_gpu_delegate():
    model = build_custom448((448, 448, 1), 1, widths=TINY_WIDTHS)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]  # the GPU path: fp16 weights
    content = conv.convert()
    assert {"CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "LOGISTIC"} <= set(model_ops(content))
    assert gpu_problems(content) == []


def test_gpu_check_names_an_op_the_delegate_cannot_run():
    """The check can fail: ROUND and REVERSE_V2 have no GPU kernel (TensorFlow's analyzer alone
    passes this model in the installed wheels, see convert/gpu.py)."""
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Lambda(lambda t: tf.reverse(tf.math.round(t), axis=[1]))(inp)
    content = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out)).convert()
    assert sorted(model_ops(content)) == ["REVERSE_V2", "ROUND"]
    assert gpu_problems(content) == ["no GPU kernel for REVERSE_V2", "no GPU kernel for ROUND"]


@pytest.mark.heavy
def test_custom448_int8_converts_runs_on_gpu_and_writes_parity_vectors_at_448(tmp_path, fracatlas):
    """The real registry graph at 448 px: int8 conversion, GPU verdict of both phone files, and
    parity vectors whose canvases and outputs Python reproduces (the Kotlin core reads the same)."""
    import json

    from conv_helpers import make_bundle
    from convert.tflite import convert_bundle
    from edge.core.imageio import read_image
    from edge.core.parity import argb_to_rgb, write_vectors
    from edge.core.preprocess import letterbox_u8
    from edge.core.runtime import EdgeModel

    bundle = make_bundle(tmp_path / "bundle", fracatlas, arch="custom448", size=448)
    models = []
    for precision in ("int8", "fp16"):
        conv = convert_bundle(bundle, precision, out=tmp_path / f"m_{precision}.tflite", debug=False, report=False)
        assert gpu_problems(conv.path.read_bytes()) == [], precision
        models.append(EdgeModel.load(conv.path))
    int8 = models[0]
    assert int8.input_details[0]["shape"].tolist() == [1, 448, 448, 1]
    images = sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[:2]
    write_vectors(models, images, tmp_path / "vec", spec_variants=False)
    manifest = json.loads((tmp_path / "vec" / "manifest.json").read_text())
    assert [e["spec"]["preprocess"]["size"] for e in manifest] == [[448, 448], [448, 448]]
    d = tmp_path / "vec"
    for case in manifest[0]["cases"]:
        argb = np.frombuffer((d / case["argb"]).read_bytes(), "<i4").reshape(case["height"], case["width"])
        u8 = np.frombuffer((d / case["letterbox_u8"]).read_bytes(), np.uint8).reshape(448, 448)
        assert np.array_equal(u8, letterbox_u8(argb_to_rgb(argb), int8.preprocess_spec))
        src = next((p for p in images if p.stem == case["name"]), None)
        if src is not None:  # the radiographs themselves (not the large/small variants)
            assert np.array_equal(u8, letterbox_u8(read_image(src).pixels, int8.preprocess_spec))
        q = np.frombuffer((d / case["input_q"]).read_bytes(), np.uint8)
        raw = np.frombuffer((d / case["output_raw"]).read_bytes(), np.uint8)
        assert np.array_equal(int8.invoke_raw(q.reshape(1, 448, 448, 1)).reshape(-1), raw)
        out = int8.spec.output
        assert abs(case["expected"]["probabilities"]["fractured"] - (raw[0] - out.zero_point) * out.scale) < 1e-6
