"""Parity vectors for the Android core: written from real radiographs and a real int8 model."""

import json

import numpy as np

from edge.core.bundle import SAMPLES_DIR
from edge.core.imageio import read_image
from edge.core.parity import argb_to_rgb, to_argb, write_vectors
from edge.core.preprocess import letterbox_u8
from edge.core.runtime import EdgeModel


def test_argb_round_trip_keeps_pixels():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    argb = to_argb(rgb)
    assert argb.dtype == np.int32 and (argb.view(np.uint32) >> 24 == 0xFF).all()
    assert np.array_equal(argb_to_rgb(argb), rgb)


def test_vectors_describe_what_the_model_does(tiny_bundle, tmp_path):
    from convert.tflite import convert_bundle

    conv = convert_bundle(tiny_bundle, "int8", out=tmp_path / "m_int8.tflite", debug=False, report=False)
    model = EdgeModel.load(conv.path)
    images = sorted((SAMPLES_DIR / "fractured").glob("*.jpg"))[:2]
    manifest = write_vectors(model, images, tmp_path / "vec")
    on_disk = json.loads((tmp_path / "vec" / "manifest.json").read_text())
    assert on_disk["format"] == "fracture-edge/parity-vectors" and on_disk["spec"] == model.spec.to_dict()
    H, W = model.preprocess_spec.size
    for case in manifest["cases"]:
        d = tmp_path / "vec"
        argb = np.frombuffer((d / case["argb"]).read_bytes(), "<i4").reshape(case["height"], case["width"])
        u8 = np.frombuffer((d / case["letterbox_u8"]).read_bytes(), np.uint8).reshape(H, W)
        # the canvas from the ARGB the phone gets equals the one from the decoder training used
        src = next(p for p in images if p.stem == case["name"])
        assert np.array_equal(u8, letterbox_u8(read_image(src).pixels, model.preprocess_spec))
        assert np.array_equal(u8, letterbox_u8(argb_to_rgb(argb), model.preprocess_spec))
        q = np.frombuffer((d / case["input_q"]).read_bytes(), np.uint8)
        raw = np.frombuffer((d / case["output_raw"]).read_bytes(), np.uint8)
        assert np.array_equal(model.invoke_raw(q.reshape(model.input_details[0]["shape"])).reshape(-1), raw)
        p = case["expected"]["probabilities"]
        out = model.spec.output
        assert abs(p["fractured"] - (raw[0] - out.zero_point) * out.scale) < 1e-6
        assert abs(sum(p.values()) - 1) < 1e-6
