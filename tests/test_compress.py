"""convert.qat: QAT (+ pruning) writes a new bundle that converts to int8 with learned ranges."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from conv_helpers import make_bundle, real_canvases
from convert.qat import CompressConfig, compress
from convert.tflite import convert_bundle
from edge.app.cli import main
from edge.core.bundle import load_bundle
from edge.core.errors import EdgeError
from edge.core.preprocess import normalize
from edge.core.runtime import EdgeModel


@pytest.mark.slow
def test_qat_and_pruning_to_int8(tmp_path, small_data, fracatlas):
    src = make_bundle(tmp_path / "src", fracatlas)
    b = compress(
        src,
        CompressConfig(
            data=str(small_data), out=str(tmp_path / "qat"), qat=True, prune=0.5, epochs=1, max_per_class=8, batch_size=8
        ),
    )
    c = b.card.compression
    assert b.qat and c["prune"] == 0.5 and c["source_bundle_sha256"] == src.sha256
    assert c["sparsity"] >= 0.45  # pruning reached its target and QAT kept the zeros
    assert set(c["metrics_before"]) == set(c["metrics_after"]) == {"val", "test"}
    assert b.card.metrics == c["metrics_after"]
    for split, a in c["agreement_with_source"].items():  # the compressed model against its source, per split
        assert split in ("val", "test") and a["n"] == 16 and 0.5 <= a["agreement"] <= 1.0 and a["max_abs_diff"] < 0.5
    reloaded = load_bundle(b.path)  # loads through tfmot's quantize scope
    assert any("quant" in layer.name for layer in reloaded.load_model().layers)
    conv = convert_bundle(reloaded, "int8", out=tmp_path / "qat_int8.tflite", report=False)
    assert conv.report["precision_leftovers"] == [] and conv.report["qat"]
    canv, _ = real_canvases(fracatlas, b.spec, 8)
    p_keras = reloaded.predict_proba(normalize(canv, b.spec))
    assert np.abs(EdgeModel.load(conv.path).predict_canvases(canv) - p_keras).max() < 0.05


def test_compress_refuses_nothing_to_do(tmp_path, small_data):
    with pytest.raises(EdgeError, match="nothing to do"):
        compress(None, CompressConfig(data=str(small_data), out=str(tmp_path / "o"), qat=False))
    r = CliRunner().invoke(main, ["compress", str(tmp_path), "--qat", "--data", str(small_data), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a model bundle" in r.output
    r = CliRunner().invoke(
        main, ["compress", str(tmp_path), "--prune", "1.5", "--data", str(small_data), "-o", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "between 0 and 1" in r.output


def test_qat_ranges_start_where_calibration_ends(tmp_path, fracatlas):
    """tfmot starts every range at [-6, 6]; seeded from real images, the fake-quant model
    matches the float model before any fine-tuning (as post-training int8 does)."""
    from convert.qat import _quantize, calibrate_ranges

    b = make_bundle(tmp_path / "src", fracatlas, arch="custom")  # outputs spread over 0..1 on real images
    float_model = b.load_model()
    x = normalize(real_canvases(fracatlas, b.spec, 16, split="train")[0], b.spec)
    p_float = float_model.predict(x, verbose=0)[:, 0]
    q = _quantize(float_model, keep_sparsity=False)
    unseeded = np.abs(q.predict(x, verbose=0)[:, 0] - p_float).max()
    assert calibrate_ranges(q, float_model, x) >= 10
    seeded = np.abs(q.predict(x, verbose=0)[:, 0] - p_float).max()
    ptq = convert_bundle(b, "int8", out=tmp_path / "ptq.tflite", report=False)
    canv = real_canvases(fracatlas, b.spec, 16, split="train")[0]
    ptq_err = np.abs(EdgeModel.load(ptq.path).predict_canvases(canv)[:, b.positive_index()] - p_float).max()
    # a random-weight net quantizes badly either way: the point is QAT now starts at PTQ's error
    assert seeded <= 2 * ptq_err + 0.02 and seeded < unseeded / 4, (seeded, ptq_err, unseeded)
    ranges = {v.name: float(np.max(v.numpy())) for v in q.non_trainable_weights if v.name.endswith("_max:0")}
    assert abs(next(r for n, r in ranges.items() if n.startswith("quantize_layer")) - float(x.max())) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg16", pytest.param("resnet50", marks=pytest.mark.heavy)])  # resnet50: ~3.5 min
def test_qat_backbones_to_int8(arch, tmp_path, small_data, fracatlas):
    """QAT wraps, seeds, fine-tunes and converts the two ImageNet backbones too (32 px: speed)."""
    src = make_bundle(tmp_path / "src", fracatlas, arch=arch, size=32, spread=False)
    b = compress(
        src,
        CompressConfig(
            data=str(small_data),
            out=str(tmp_path / "qat"),
            qat=True,
            epochs=1,
            max_per_class=2,
            batch_size=4,
            calibration_images=8,
        ),
    )
    conv = convert_bundle(b, "int8", out=tmp_path / "qat_int8.tflite", report=False)
    assert conv.report["precision_leftovers"] == [] and conv.report["qat"]
    canv, _ = real_canvases(fracatlas, b.spec, 4)
    p_keras = load_bundle(b.path).predict_proba(normalize(canv, b.spec))
    assert np.abs(EdgeModel.load(conv.path).predict_canvases(canv) - p_keras).max() < 0.05
