"""Parity vectors for the Android core: written from real radiographs and a real int8 model."""

import json
from pathlib import Path

import numpy as np

from edge.core.bundle import SAMPLES_DIR
from edge.core.imageio import read_image
from edge.core.parity import argb_to_rgb, to_argb, write_vectors
from edge.core.preprocess import (
    PreprocessSpec,
    letterbox_geometry,
    letterbox_u8,
    normalize,
)
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
    entries = write_vectors(model, images, tmp_path / "vec")
    on_disk = json.loads((tmp_path / "vec" / "manifest.json").read_text())
    assert [e["spec"]["model_id"] for e in on_disk[1:]] == [
        f"preprocess-only-{k}" for k in ("caffe3", "caffe1", "caffe3_256x192", "lite3")
    ]
    manifest = on_disk[0]
    assert (
        manifest == entries[0]
        and manifest["format"] == "fracture-edge/parity-vectors"
        and manifest["spec"] == model.spec.to_dict()
    )
    assert [c["name"] for c in manifest["cases"]] == [p.stem for p in images] + [
        f"{images[0].stem}_large",
        f"{images[0].stem}_small",
    ]
    H, W = model.preprocess_spec.size
    for case in manifest["cases"][:2]:
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


GOLDEN = Path(__file__).parent / "golden" / "letterbox_373x454_64.json"


def _golden_source(w: int, h: int) -> np.ndarray:
    """The formula of the golden file's source image, vectorised (the generator loops per pixel)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(3 * x + 5 * y) % 256, (x * y) % 251, (x + 2 * y) % 256], axis=-1).astype(np.uint8)


def test_letterbox_matches_the_checked_in_golden_canvas():
    golden = json.loads(GOLDEN.read_text())
    src = golden["source"]
    spec = PreprocessSpec(size=tuple(golden["size"]), pad_value=golden["pad_value"])
    g = golden["geometry"]
    assert (g["top"], g["left"], g["height"], g["width"]) == (0, 5, 64, 53)  # by hand: 373 * 64 / 454 = 52.58 -> 53
    assert letterbox_geometry(src["height"], src["width"], spec.size) == (g["top"], g["left"], g["height"], g["width"])
    canvas = letterbox_u8(_golden_source(src["width"], src["height"]), spec)
    want = np.array(golden["canvas"], dtype=np.uint8)
    assert (want[:, :5] == 7).all() and (want[:, 58:] == 7).all() and (want[:, 5:58] != 7).any()
    assert np.array_equal(canvas, want), f"{int((canvas != want).sum())} pixels differ from the golden canvas"


def test_size_and_spec_variants_cover_what_the_phone_can_get(tmp_path):
    """The large and small images, and the caffe-mean specs, are held to the one preprocessing definition."""
    from edge.core.parity import source_images, variant_specs

    src = sorted((SAMPLES_DIR / "not_fractured").glob("*.jpg"))[:1]
    sources = dict(source_images(src))
    big, small = sources[f"{src[0].stem}_large"], sources[f"{src[0].stem}_small"]
    h, w = sources[src[0].stem].shape
    assert big.shape == (6 * h, 6 * w) and max(small.shape) == 150  # below the 224 input
    base = {"preprocess": {}, "output": {"shape": [1, 1], "activation": "sigmoid"}, "threshold": 0.3, "labels": ["a", "b"]}
    specs = dict(variant_specs(base))
    caffe3 = PreprocessSpec.from_dict(specs["caffe3"]["preprocess"])
    assert (
        caffe3.channels == 3
        and caffe3.mean == (103.939, 116.779, 123.68)
        and specs["caffe3"]["input"]["shape"] == [1, 224, 224, 3]
    )
    assert specs["caffe3_256x192"]["input"]["shape"] == [1, 256, 192, 3] and specs["caffe1"]["input"]["shape"] == [1, 224, 224, 1]
    assert specs["lite3"]["preprocess"]["mean"] == [127.0] * 3 and specs["lite3"]["preprocess"]["std"] == [128.0] * 3
    u8 = letterbox_u8(argb_to_rgb(small), caffe3)
    _, left, nh, _ = letterbox_geometry(*small.shape, caffe3.size)
    assert nh == 224 and (u8[:, :left] == 0).all()  # upscaled to the full height, padded at the sides
    x = normalize(u8, caffe3)
    assert x.dtype == np.float32 and x.shape == (224, 224, 3)
    assert np.array_equal(x[..., 0], (u8.astype(np.float32) - np.float32(103.939)) / np.float32(1.0))


def test_dicom_vectors_are_what_they_claim(tmp_path):
    """The generated DICOM files cover each reader path, and their expected grey images are pydicom's."""
    import pydicom

    from edge.core.parity import write_dicom_vectors

    manifest = write_dicom_vectors(tmp_path, PreprocessSpec(size=(64, 64)))
    seen = set()
    for case in manifest["cases"]:
        ds = pydicom.dcmread(tmp_path / case["file"])
        ts = ds.file_meta.TransferSyntaxUID
        seen.add(
            (
                ts.is_implicit_VR,
                ts.is_compressed,
                int(ds.BitsAllocated),
                int(ds.PixelRepresentation),
                str(ds.PhotometricInterpretation),
            )
        )
        grey = np.frombuffer((tmp_path / case["grey_f64"]).read_bytes(), "<f8").reshape(case["height"], case["width"])
        assert np.array_equal(grey, read_image(tmp_path / case["file"]).pixels)
        assert grey.min() >= 0 and grey.max() <= 255 + 1e-9 and grey.std() > 10  # real content, not a flat window
        assert ("phone_error" in case) == ts.is_compressed
    assert (True, False, 16, 0, "MONOCHROME1") in seen and (False, False, 16, 1, "MONOCHROME2") in seen
    assert (False, False, 8, 0, "MONOCHROME2") in seen and (False, True, 8, 0, "MONOCHROME2") in seen


def test_png16_vectors_round_trip_through_pillow(tmp_path):
    """The hand-filtered 16-bit PNGs decode in Pillow to the values written, and Python windows them min-max."""
    from PIL import Image

    from edge.core.parity import png16_bytes, write_png16_vectors

    values = np.arange(7 * 9, dtype=np.uint16).reshape(7, 9) * 1000 + 17
    (tmp_path / "t.png").write_bytes(png16_bytes(values))
    with Image.open(tmp_path / "t.png") as im:
        assert np.array_equal(np.asarray(im).astype(np.uint16), values)
    grey = read_image(tmp_path / "t.png").pixels
    assert grey.min() == 0 and abs(grey.max() - 255) < 1e-9
    manifest = write_png16_vectors(tmp_path, PreprocessSpec(size=(64, 64)))
    assert [c["name"] for c in manifest["cases"]] == ["ramp_12bit", "radiograph_16bit"]
