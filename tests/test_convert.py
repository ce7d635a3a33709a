"""convert.tflite / convert.report / edge.core.spec and `edge convert`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conv_helpers import make_bundle, real_canvases
from convert import tflite as ct
from edge.app.cli import main
from edge.core.errors import EdgeError
from edge.core.preprocess import normalize
from edge.core.runtime import EdgeModel
from edge.core.spec import ModelSpec, metadata_names, sidecar_path


def test_int8_is_full_integer_with_report(conv_int8, conv_bundle):
    r = conv_int8.report
    assert r["precision_leftovers"] == []  # no float op inside
    assert "CONV_2D" in r["ops"] and "QUANTIZE" in r["ops"]
    assert r["layers"] and all("rmse_over_scale" in row for row in r["layers"])
    assert r["gpu"]["compatible"] in (True, False)
    assert r["calibration"]["source"] == "bundle calibration.npz"
    assert (conv_int8.report_dir / "report.md").read_text().startswith("# Conversion")
    side = json.loads(sidecar_path(conv_int8.path).read_text())
    assert side["threshold"] == conv_bundle.threshold and side["bundle_sha256"] == conv_bundle.sha256
    assert side["input"]["scale"] == pytest.approx(1 / 255, rel=1e-6) and side["input"]["zero_point"] == 0


def test_spec_round_trip(conv_int8):
    data = conv_int8.path.read_bytes()
    spec = ModelSpec.read(data, conv_int8.path)
    assert spec == conv_int8.spec
    assert sidecar_path(conv_int8.path).read_bytes() == spec.to_json()  # the .json is the embedded spec, byte for byte
    # embedding again replaces the entry, and the model still runs
    from dataclasses import replace

    again = replace(spec, threshold=0.25).embed(data)
    assert metadata_names(again).count("fracture_edge_spec") == 1
    assert ModelSpec.read(again, "again").threshold == 0.25


@pytest.mark.parametrize("precision", ["fp16", "dynamic", "float32"])
def test_other_precisions_custom_arch(precision, tmp_path, fracatlas):
    b = make_bundle(tmp_path / "b", fracatlas, arch="custom", size=32)
    c = ct.convert_bundle(b, precision, out=tmp_path / f"m_{precision}.tflite", report=False)
    m = EdgeModel.load(c.path)
    assert m.spec.precision == precision and m.spec.input.dtype == "float32"
    canv, _ = real_canvases(fracatlas, b.spec, 6)
    ref = b.predict_proba(normalize(canv, b.spec))
    assert np.abs(m.predict_canvases(canv) - ref).max() < 0.02
    if precision == "float32":
        assert c.report["precision_leftovers"] == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch,precision",
    [
        ("vgg16", "fp16"),
        ("vgg16", "dynamic"),
        # ResNet50's conversions take minutes each: .ci/run runs them in its heavy step
        pytest.param("resnet50", "fp16", marks=pytest.mark.heavy),
        pytest.param("resnet50", "dynamic", marks=pytest.mark.heavy),
    ],
)
def test_fp16_and_dynamic_backbones(arch, precision, tmp_path, fracatlas):
    b = make_bundle(tmp_path / "b", fracatlas, arch=arch, size=32, spread=False)
    c = ct.convert_bundle(b, precision, out=tmp_path / f"m_{precision}.tflite", report=False)
    m = EdgeModel.load(c.path)
    assert m.spec.precision == precision and m.spec.input.shape == [1, 32, 32, 3]
    canv, _ = real_canvases(fracatlas, b.spec, 4)
    assert np.abs(m.predict_canvases(canv) - b.predict_proba(normalize(canv, b.spec))).max() < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["custom", "vgg16", pytest.param("resnet50", marks=pytest.mark.heavy)])
def test_int8_all_architectures(arch, tmp_path, fracatlas):
    b = make_bundle(tmp_path / "b", fracatlas, arch=arch, size=32, spread=arch == "custom")
    c = ct.convert_bundle(b, "int8", out=tmp_path / "m.tflite", debug=False, report=False)
    assert c.report["precision_leftovers"] == []
    m = EdgeModel.load(c.path)
    assert m.spec.input.shape == [1, 32, 32, b.spec.channels]
    canv, _ = real_canvases(fracatlas, b.spec, 4)
    assert np.abs(m.predict_canvases(canv) - b.predict_proba(normalize(canv, b.spec))).max() < 0.05


def test_keep_float_auto(conv_bundle, tmp_path, fracatlas):
    # tolerance 0 forces selective quantisation: the worst layers stay float, the file says so
    calib = {"calib": fracatlas / "val", "calib_max": 48}  # more images than the per-layer table's 16
    c = ct.convert_bundle(
        conv_bundle, "int8", out=tmp_path / "kf.tflite", keep_float="auto", keep_float_tol=0.0, report=False, **calib
    )
    assert c.report["keep_float"] and c.spec.keep_float == c.report["keep_float"]
    assert c.report["precision_leftovers"]  # float ops now listed
    assert c.report["agreement"]["max_abs_diff"] < 0.03
    # with kept float layers the io is int8, and the file says what it is (a uint8 request came back int8 silently)
    m = EdgeModel.load(c.path)
    assert (m.spec.input.dtype, m.spec.output.dtype) == ("int8", "int8") == (c.report["io_type"],) * 2
    assert m.interpreter.get_input_details()[0]["dtype"] == np.int8
    # calibrated on every calibration image like the plain conversion: the same ranges for the layers it quantises
    plain = ct.convert_bundle(
        conv_bundle, "int8", out=tmp_path / "plain.tflite", io_type="int8", report=False, debug=False, **calib
    )

    def ranges(path):
        it = EdgeModel.load(path).interpreter
        return {t["name"]: t["quantization"] for t in it.get_tensor_details() if t["quantization"][0]}

    kept, full = ranges(c.path), ranges(plain.path)
    common = [k for k in kept if k in full and k not in c.report["keep_float"] and "/" in k]  # activations, by layer name
    assert len(common) >= 3 and all(kept[k] == full[k] for k in common), {k: (kept[k], full[k]) for k in common}
    with pytest.raises(EdgeError, match="keep-float writes int8 input and output") as e:
        ct.convert_bundle(conv_bundle, "int8", out=tmp_path / "u8.tflite", io_type="uint8", keep_float="auto", report=False)
    assert e.value.hint == "leave --io-type out or pass --io-type int8" and not (tmp_path / "u8.tflite").exists()


def test_op_that_cannot_be_integer_quantised(conv_bundle):
    from edge.core._tf import keras, tf

    inp = keras.Input((8, 8, 1))
    out = keras.layers.Lambda(tf.math.erf)(inp)  # no int8 kernel for ERF in TFLite
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(out)))
    spec = type(conv_bundle.spec)(size=(8, 8))
    rep = ct._representative(np.random.default_rng(0).integers(0, 255, (4, 8, 8), dtype=np.uint8), spec)
    with pytest.raises(EdgeError, match="cannot fully integer-quantise"):
        ct._run_converter(ct._converter(model, spec, "int8", rep), conv_bundle, "int8")


def test_interrupted_write_keeps_old_files(conv_int8, tmp_path, monkeypatch):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"old model")
    sidecar_path(out).write_text("old spec")
    real = ct._write_chunks

    def dying(path, data, chunk=1 << 20):
        real(path, data[: len(data) // 2], chunk)  # half the file reaches the disk, then the power goes
        raise KeyboardInterrupt

    monkeypatch.setattr(ct, "_write_chunks", dying)
    with pytest.raises(KeyboardInterrupt):
        ct.write_outputs(out, conv_int8.model_bytes, conv_int8.spec)
    assert out.read_bytes() == b"old model" and sidecar_path(out).read_text() == "old spec"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.tflite"]  # no temp files left


def test_cli_bad_inputs(tmp_path, conv_bundle):
    r = CliRunner().invoke(main, ["convert", str(tmp_path), "--int8"])
    assert r.exit_code == 2 and "not a model bundle" in r.output
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    r = CliRunner().invoke(
        main, ["convert", str(conv_bundle.path), "--int8", "--calib", str(tmp_path / "calib"), "-o", str(tmp_path / "x.tflite")]
    )
    assert r.exit_code == 2 and "calibration folder has no readable image" in r.output
    assert not (tmp_path / "x.tflite").exists()
    r = CliRunner().invoke(main, ["convert", str(conv_bundle.path)])
    assert r.exit_code == 2 and "choose a format" in r.output
    for args in (["--int8", "--fp16"], ["-f", "int8", "--dynamic"], ["--format", "int4"]):
        r = CliRunner().invoke(main, ["convert", str(conv_bundle.path), *args, "-o", str(tmp_path / "y.tflite")])
        assert r.exit_code == 2 and "Traceback" not in r.output, args
        assert ("choose one format" in r.output) if args[-1] != "int4" else ("'int4' is not one of" in r.output)
    assert not (tmp_path / "y.tflite").exists()


def test_cli_convert(conv_bundle, tmp_path):
    out = tmp_path / "cli_fp16.tflite"
    r = CliRunner().invoke(main, ["convert", str(conv_bundle.path), "--fp16", "-f", "fp16", "-o", str(out)])
    assert r.exit_code == 0, r.output  # the alias and --format naming the same format agree
    assert out.is_file() and (tmp_path / "cli_fp16_report" / "report.json").is_file()
    assert EdgeModel.load(out).precision == "fp16"


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_cli_interrupted_while_writing_leaves_no_tmp_files(conv_bundle, tmp_path, monkeypatch, signum):
    """A real signal to this process mid-write (Ctrl-C, or kill/timeout's SIGTERM): exit 130, the output
    folder as it was, no hidden .tmp files."""
    import os
    import signal

    real = ct._write_chunks

    def signalled(path, data, chunk=1 << 20):
        real(path, data[: len(data) // 2], chunk)
        os.kill(os.getpid(), getattr(signal, signum))
        real(path, data, chunk)  # not reached: the handler raises at the next bytecode

    monkeypatch.setattr(ct, "_write_chunks", signalled)
    # Ctrl-C as an interactive run has it: a suite started in the background (`pytest &`, nohup) inherits
    # SIGINT ignored, and Python then leaves it ignored (the command rightly does not override that)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = signal.getsignal(signal.SIGTERM)
    try:
        r = CliRunner().invoke(main, ["convert", str(conv_bundle.path), "--float32", "-o", str(tmp_path / "m.tflite")])
    finally:
        signal.signal(signal.SIGINT, previous_int)
    assert r.exit_code == 130 and "interrupted" in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the command put the default back
