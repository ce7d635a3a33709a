"""edge.validate and `edge validate`: the accuracy-drift gate and its exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edge
from conv_helpers import make_bundle
from edge.app.cli import main
from edge.core.bundle import DEFAULT_BUNDLE
from edge.core.runtime import EdgeModel

ASSETS = Path(__file__).resolve().parents[1] / "android_demo" / "app" / "src" / "main" / "assets"  # the phone's models

# loose enough for a 48 px test model on 24 images, tight enough that damage fails
GATE = [
    "--max-accuracy-drop",
    "0.1",
    "--max-auroc-drop",
    "0.05",
    "--min-agreement",
    "0.9",
    "--max-latency-ms",
    "500",
    "--max-size-mb",
    "1",
    "--runs",
    "10",
    "--warmup",
    "2",
]
SCHEMA = {
    "format",
    "version",
    "passed",
    "failures",
    "checks",
    "thresholds",
    "data",
    "full",
    "edge",
    "drift",
    "agreement",
    "prob_diff",
    "disagreements",
    "latency_ms",
    "memory_mb",
    "size_bytes",
    "timing_s",
}


def _run(*args):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def test_api_passes_on_good_int8(conv_bundle, conv_int8, conv_valdata, tmp_path):
    r = edge.validate(
        full=conv_bundle,
        edge=conv_int8.path,
        data=conv_valdata,
        runs=10,
        warmup=2,
        report_dir=tmp_path / "rep",
        thresholds={
            "max_accuracy_drop": 0.1,
            "max_auroc_drop": 0.05,
            "min_agreement": 0.9,
            "max_latency_ms": 500,
            "max_size_mb": 1,
        },
    )
    assert r["passed"], r["failures"]
    assert set(r) >= SCHEMA
    for side in ("full", "edge"):
        assert {"accuracy", "auroc", "sensitivity", "specificity", "f1"} <= set(r[side])
        assert {"p50", "p90", "p99"} <= set(r["latency_ms"][side])
    assert r["data"]["n"] == 24 and r["size_bytes"]["edge"] == conv_int8.path.stat().st_size
    assert r["latency_ms"]["source"] == "measured" and r["latency_ms"]["edge"]["runs"] == 10
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["passed"] is True and set(saved["checks"]) == {
        "accuracy_drop",
        "auroc_drop",
        "agreement",
        "latency_ms",
        "size_mb",
        "source",
        "contract",
    }
    assert saved["checks"]["contract"]["passed"] is True and saved["checks"]["contract"]["value"] == []
    for png in ("confusion.png", "prob_diff.png", "latency.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000
    assert "PASSED" in (tmp_path / "rep" / "report.md").read_text()


def test_cli_exit_0(conv_bundle, conv_int8, conv_valdata):
    r = _run("--full", conv_bundle.path, "--edge", conv_int8.path, "--data", conv_valdata, *GATE)
    assert r.exit_code == 0, r.output
    assert "PASSED" in r.output


def _perturbed(src, dest, noise=40):
    """The same .tflite (same embedded spec) with its int8 conv weights damaged."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(src.read_bytes(), 0))
    g = model.subgraphs[0]
    rng = np.random.default_rng(0)
    for t in g.tensors:
        buf = model.buffers[t.buffer]
        if t.type == fb.TensorType.INT8 and buf.data is not None and len(buf.data) > 64:
            w = buf.data.view(np.int8).astype(np.int16) + rng.integers(-noise, noise, len(buf.data))
            buf.data = np.clip(w, -127, 127).astype(np.int8).view(np.uint8)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dest.write_bytes(bytes(b.Output()))
    return dest


def test_damaged_model_fails_with_exit_1(conv_bundle, conv_int8, conv_valdata, tmp_path):
    bad = _perturbed(conv_int8.path, tmp_path / "damaged.tflite")
    r = _run("--full", conv_bundle.path, "--edge", bad, "--data", conv_valdata, *GATE)
    assert r.exit_code == 1, r.output
    assert "agreement: the two models agree on" in r.output
    assert "source:" not in r.output  # same source bundle: only the behaviour is wrong


def test_another_model_fails_with_exit_1(conv_bundle, conv_valdata, tmp_path, fracatlas):
    from convert.tflite import convert_bundle

    other = make_bundle(tmp_path / "other", fracatlas, seed=7)
    c = convert_bundle(other, "int8", out=tmp_path / "other.tflite", debug=False, report=False)
    r = _run("--full", conv_bundle.path, "--edge", c.path, "--data", conv_valdata, *GATE)
    assert r.exit_code == 1, r.output
    assert "source: the edge model was converted from bundle" in r.output
    assert "agreement:" in r.output


def _device_report(edge_model, data, bundle_sha):
    from edge.core.data import discover, load_canvases

    ds = discover(data)
    canv, kept, _ = load_canvases([s.path for s in ds.samples], edge_model.preprocess_spec)
    probs = edge_model.predict_canvases(canv)
    images = [
        {
            "path": ds.samples[i].path.relative_to(data).as_posix(),
            "label": ds.samples[i].label,
            "probabilities": dict(zip(edge_model.labels, map(float, p), strict=True)),
            "latency_ms": 3.0 + 0.1 * j,
        }
        for j, (i, p) in enumerate(zip(kept, probs, strict=True))
    ]
    return {
        "format": "fracture-edge/device-report",
        "version": 1,
        "model": {"file": edge_model.path.name, "sha256": edge_model.sha256, "bundle_sha256": bundle_sha, "precision": "int8"},
        "device": {"manufacturer": "test", "model": "workstation", "android_sdk": 34, "abi": "x86_64"},
        "accelerator": "cpu",
        "threads": 2,
        "created": "2026-11-26T16:00:00Z",
        "images": images,
    }


def test_device_report_path(conv_bundle, conv_int8, conv_valdata, tmp_path):
    m = EdgeModel.load(conv_int8.path)
    dev = tmp_path / "device.json"
    dev.write_text(json.dumps(_device_report(m, conv_valdata, conv_bundle.sha256)))
    r = edge.validate(
        full=conv_bundle,
        device_report=dev,
        data=conv_valdata,
        runs=5,
        warmup=1,
        thresholds={"min_agreement": 0.9, "max_accuracy_drop": 0.1, "max_auroc_drop": 0.05, "max_latency_ms": 100},
    )
    assert r["passed"], r["failures"]
    assert r["latency_ms"]["source"] == "device" and r["latency_ms"]["edge"]["p50"] == pytest.approx(3.0 + 0.1 * 11.5, abs=0.06)
    assert r["device"]["accelerator"] == "cpu" and r["agreement"] == 1.0
    assert r["checks"]["size_mb"]["passed"] is None  # no .tflite here to measure
    # with the .tflite too, its hash must be the one the phone ran
    r = _run("--full", conv_bundle.path, "--edge", conv_int8.path, "--device-report", dev, "--data", conv_valdata, *GATE)
    assert r.exit_code == 0, r.output

    wrong = _device_report(m, conv_valdata, "0" * 64)
    dev.write_text(json.dumps(wrong))
    r = _run("--full", conv_bundle.path, "--device-report", dev, "--data", conv_valdata)
    assert r.exit_code == 2 and "not this bundle" in r.output and "Traceback" not in r.output

    short = _device_report(m, conv_valdata, conv_bundle.sha256)
    short["images"] = short["images"][1:]
    dev.write_text(json.dumps(short))
    r = _run("--full", conv_bundle.path, "--device-report", dev, "--data", conv_valdata)
    assert r.exit_code == 2 and "not in the device report" in r.output

    dev.write_text("{ not json")
    r = _run("--full", conv_bundle.path, "--device-report", dev, "--data", conv_valdata)
    assert r.exit_code == 2 and "not valid JSON" in r.output

    other_hash = _device_report(m, conv_valdata, conv_bundle.sha256)
    other_hash["model"]["sha256"] = "f" * 64
    dev.write_text(json.dumps(other_hash))
    r = _run("--full", conv_bundle.path, "--edge", conv_int8.path, "--device-report", dev, "--data", conv_valdata)
    assert r.exit_code == 2 and "another .tflite" in r.output


def test_exit_2_bad_inputs(conv_bundle, conv_int8, conv_valdata, tmp_path, fracatlas):

    # labels the bundle does not know
    odd = tmp_path / "odd"
    shutil.copytree(conv_valdata, odd)
    (odd / "not_fractured").rename(odd / "cat")
    r = _run("--full", conv_bundle.path, "--edge", conv_int8.path, "--data", odd)
    assert r.exit_code == 2 and "not among the model's classes" in r.output
    # not a bundle, unknown option
    assert _run("--full", tmp_path, "--edge", conv_int8.path, "--data", conv_valdata).exit_code == 2
    assert _run("--bogus").exit_code == 2
    assert _run("--edge", conv_int8.path).exit_code == 2  # --data missing


def test_thresholds_from_pyproject(conv_bundle, conv_int8, conv_valdata, tmp_path):
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text("[tool.edge.validate]\nmin-agreement = 1.01\nmax-size-mb = 0.001\n")
    r = _run("--full", conv_bundle.path, "--edge", conv_int8.path, "--data", conv_valdata, "--config", cfg, "--runs", "3")
    assert r.exit_code == 1
    assert "agreement:" in r.output and "size: the edge model is" in r.output
    # flags override the file
    r = _run(
        "--full",
        conv_bundle.path,
        "--edge",
        conv_int8.path,
        "--data",
        conv_valdata,
        "--config",
        cfg,
        "--runs",
        "3",
        "--min-agreement",
        "0.9",
        "--max-size-mb",
        "1",
        "--max-accuracy-drop",
        "0.1",
        "--max-auroc-drop",
        "0.05",
    )
    assert r.exit_code == 0, r.output
    cfg.write_text("[tool.edge.validate]\nmax-acuracy-drop = 0.1\n")
    r = _run("--full", conv_bundle.path, "--edge", conv_int8.path, "--data", conv_valdata, "--config", cfg)
    assert r.exit_code == 2 and "unknown key 'max-acuracy-drop'" in r.output


@pytest.mark.slow
@pytest.mark.full_data  # the whole test split: the gate's limits are meant for hundreds of images, not tens
@pytest.mark.skipif(not (DEFAULT_BUNDLE / "model_card.json").is_file(), reason="embedded default bundle not built yet")
def test_gate_passes_on_embedded_default(tmp_path, fracatlas, monkeypatch):
    """The shipped int8 model (android_demo's asset) of the shipped bundle passes CI's gate on FracAtlas' 515
    test radiographs. It keeps the stem and the first depthwise convolution in float (`edge convert --int8
    --keep-float auto`): all-int8 post-training quantisation of the EfficientNet-Lite0 default agrees on only
    95.9% of the calls (97% asked), since int8 moves P by 0.01-0.04 near the 0.049 threshold (the manual,
    .docs/manual/default-model.md, "The phone models")."""
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    shipped = ASSETS / "fracture_int8.tflite"
    r = _run("--data", fracatlas, "--split", "test", "--edge", shipped, "--report", tmp_path / "rep", "--runs", "20")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["passed"] is True and rep["data"]["n"] >= 500
    assert rep["checks"]["source"]["passed"] and EdgeModel.load(shipped).spec.keep_float


def _respec(src, dest, **changes):
    """The same .tflite with decision fields of its embedded spec changed (what a careless re-export does)."""
    from dataclasses import replace

    from edge.core.spec import ModelSpec

    data = src.read_bytes()
    dest.write_bytes(replace(ModelSpec.read(data, src), **changes).embed(data))
    return dest


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"threshold": 0.94}, ["threshold: the edge model decides at 0.94, the full model at 0.5"]),
        ({"positive_label": "not_fractured"}, ["positive label: the edge model's is 'not_fractured'"]),
        ({"labels": ["not_fractured", "fractured"]}, ["labels: the edge model has ['not_fractured', 'fractured']"]),
        ({"threshold": 0.3, "labels": ["not_fractured", "fractured"]}, ["threshold:", "labels:"]),
    ],
    ids=["threshold", "positive", "label-order", "two"],
)
def test_contract_differences_fail_with_a_sentence_each(conv_bundle, conv_int8, conv_valdata, tmp_path, changes, words):
    f = _respec(conv_int8.path, tmp_path / "respec.tflite", **changes)
    r = _run("--full", conv_bundle.path, "--edge", f, "--data", conv_valdata, *GATE)
    assert r.exit_code == 1, r.output
    failures = [ln.strip()[2:] for ln in r.output.splitlines() if ln.strip().startswith("- ")]
    for w in words:
        assert sum(f.startswith(w.split(":")[0] + ":") for f in failures) == 1 and any(w in f for f in failures), r.output


def test_other_preprocessing_fails_and_runs_on_its_own_spec(conv_bundle, conv_valdata, tmp_path, fracatlas):
    from convert.tflite import convert_bundle

    big = make_bundle(tmp_path / "big", fracatlas, size=40)
    c = convert_bundle(big, "float32", out=tmp_path / "big.tflite", report=False)
    r = edge.validate(full=conv_bundle, edge=c.path, data=conv_valdata, runs=2, warmup=1)
    assert not r["passed"] and r["checks"]["contract"]["passed"] is False
    assert any(f.startswith("preprocessing: the edge model's size differ") and "[40, 40] vs [48, 48]" in f for f in r["failures"])
    assert r["edge"]["n"] == r["full"]["n"] == 24  # each model saw the images through its own preprocessing


def test_a_model_for_another_task_cannot_be_compared(conv_bundle, conv_int8, conv_valdata, tmp_path):
    f = _respec(conv_int8.path, tmp_path / "cats.tflite", labels=["fractured", "cat"])
    r = _run("--full", conv_bundle.path, "--edge", f, "--data", conv_valdata)
    assert r.exit_code == 1 and "labels: the edge model has ['fractured', 'cat']" in r.output and "Traceback" not in r.output


def test_require_signature(conv_bundle, conv_int8, conv_valdata, tmp_path):
    from edge.core.signing import generate_keypair, sign

    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    generate_keypair(key, pub)
    bundle = tmp_path / "bundle"
    shutil.copytree(conv_bundle.path, bundle)
    tfl = tmp_path / "m.tflite"
    shutil.copy(conv_int8.path, tfl)
    args = ("--full", bundle, "--edge", tfl, "--data", conv_valdata, "--require-signature", pub, *GATE)
    r = _run(*args)
    assert r.exit_code == 2 and "bundle is not signed" in r.output
    sign(bundle, key)
    r = _run(*args)
    assert r.exit_code == 2 and "m.tflite: file is not signed" in r.output
    sign(tfl, key)
    r = _run(*args)
    assert r.exit_code == 0, r.output
