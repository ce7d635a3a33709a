"""The validation gate from both sides: an edge model much worse in AUROC than the full model fails
the AUROC-drop check, a better one passes it, and every limit holds at exactly its value and
fails one step beyond it.

Two real bundles share one tiny network; their heads point in opposite directions along the
difference of the class means of real radiographs' features, so one ranks the validation images
well and the other ranks them in reverse (AUROC A and 1 - A). Each is converted to int8 once.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from test_gate_checks import CHECK_OF, LIMITS  # the limits and the check each one governs

from conv_helpers import copy_class_folder
from edge.app.validation import validate
from edge.core.data import discover, load_canvases
from model_cache import TESTS, cached

SIZE = 48


@pytest.fixture(scope="module")
def gate_data(tmp_path_factory, fracatlas) -> Path:
    return copy_class_folder(fracatlas, tmp_path_factory.mktemp("gate") / "data", 12)


@pytest.fixture(scope="module")
def gate_config(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("gate_cfg") / "pyproject.toml"
    p.write_text("[tool.edge.validate]\nmax-accuracy-drop = 0.02\nmax-auroc-drop = 0.01\nmin-agreement = 0.97\n")
    return p


def _build_gate_models(gate_data: Path, out: Path) -> None:
    """out/good, out/reversed (bundles) and out/gate-good.tflite, out/gate-reversed.tflite."""
    from convert.tflite import convert_bundle
    from edge.core._tf import keras
    from edge.core.bundle import save_bundle
    from edge.core.card import Contract, ModelCard
    from edge.core.preprocess import PreprocessSpec, normalize
    from train.models import create_model, get_arch

    keras.utils.set_random_seed(11)
    spec = PreprocessSpec.for_arch("tiny", SIZE)
    model = create_model("tiny", spec.input_shape, 1)
    ds = discover(gate_data)
    canv, kept, _ = load_canvases([s.path for s in ds.samples], spec, skip_bad=True)
    y = ds.labels_index(["fractured", "not_fractured"])[kept] == 0
    feats = keras.Model(model.input, model.get_layer("head_pool").output).predict(normalize(canv, spec), verbose=0)
    w = (feats[y].mean(axis=0) - feats[~y].mean(axis=0))[:, None].astype(np.float32)
    z = feats @ w
    k = 3.0 / max(float(z.std()), 1e-6)
    made = []
    for name, sign in (("good", 1.0), ("reversed", -1.0)):
        model.get_layer("head_out").set_weights([sign * w * k, np.array([-sign * float(z.mean()) * k], np.float32)])
        card = ModelCard(
            Contract.create("tiny", "binary", ["fractured", "not_fractured"], "fractured", 0.5, spec),
            model_id=f"gate-{name}",
            gradcam_layer=get_arch("tiny").gradcam_layer,
        )
        b = save_bundle(out / name, model, card, calibration=canv)
        made.append(b)
    for b in made:
        conv = convert_bundle(b, "int8", out=out / f"{b.model_id}.tflite", keep_float=None, debug=False, report=False)
        assert conv.report["keep_float"] == []  # so the agreement figure (report_only below) did not shape the file


@pytest.fixture(scope="module")
def gate_models(tmp_path_factory, gate_data):
    """(good bundle, reversed bundle, good .tflite, reversed .tflite), built once per mutation run
    (tests/model_cache.py): the gate is not part of the build, so its mutants only load them."""
    from edge.core.bundle import load_bundle

    return cached(
        "gate_models",
        {
            "images": sorted(str(p.relative_to(gate_data)) for p in gate_data.rglob("*.jpg")),
            "builder": inspect.getsource(_build_gate_models),
        },
        lambda d: _build_gate_models(gate_data, d),
        lambda d: (load_bundle(d / "good"), load_bundle(d / "reversed"), d / "gate-good.tflite", d / "gate-reversed.tflite"),
        tmp_path_factory.mktemp("gate_models"),
        sources=[TESTS / "conv_helpers.py"],
        report_only=("convert.tflite.agreement",),
    )


def run(full, edge, data, config, **limits):
    return validate(full=full, edge=edge, data=data, config=config, runs=2, warmup=1, thresholds=limits or None)


@pytest.fixture(scope="module")
def worse(gate_models, gate_data, gate_config):
    good, _, _, rev_tfl = gate_models
    return run(good, rev_tfl, gate_data, gate_config)


def test_the_two_models_rank_the_images_oppositely(worse):
    a_full, a_edge = worse["full"]["auroc"], worse["edge"]["auroc"]
    assert a_full > 0.75 and a_edge < 0.25


def test_a_much_worse_edge_model_fails_the_auroc_check(worse):
    c = worse["checks"]["auroc_drop"]
    assert c["value"] == pytest.approx(worse["full"]["auroc"] - worse["edge"]["auroc"]) and c["value"] > 0.5
    assert (c["op"], c["limit"], c["passed"]) == ("<=", 0.01, False)
    assert worse["passed"] is False
    assert any(f.startswith("AUROC drop") for f in worse["failures"])
    assert worse["checks"]["accuracy_drop"]["passed"] is False and worse["checks"]["agreement"]["passed"] is False


def test_the_report_gives_edge_minus_full_with_paired_intervals(worse):
    p = worse["paired"]
    assert p["n"] == worse["data"]["n"] and p["n_bootstrap"] == 1000
    assert p["auroc"]["difference"] == pytest.approx(worse["edge"]["auroc"] - worse["full"]["auroc"], abs=1e-12)
    assert p["auroc"]["ci"][0] <= p["auroc"]["difference"] <= p["auroc"]["ci"][1] < 0  # far worse: not noise
    for k in ("sensitivity", "specificity"):
        assert p[k]["difference"] == pytest.approx(worse["edge"][k] - worse["full"][k], abs=1e-12)
    # binary: on every image the two calls differ, exactly one of them is right
    disagree = round(worse["data"]["n"] * (1 - worse["agreement"]))
    assert sum(p[k]["only_b"] + p[k]["only_a"] for k in ("sensitivity", "specificity")) == disagree > 0
    from edge.app.validation import markdown

    assert "Edge minus full on the same" in markdown(worse) and "McNemar p" in markdown(worse)


def test_a_better_edge_model_passes_the_auroc_check(gate_models, gate_data, gate_config):
    good, rev, good_tfl, _ = gate_models
    better = run(rev, good_tfl, gate_data, gate_config)
    c = better["checks"]["auroc_drop"]
    assert c["value"] < -0.5 and c["passed"] is True
    assert better["checks"]["accuracy_drop"]["passed"] is True
    assert not any(f.startswith("AUROC drop") for f in better["failures"])


def test_each_limit_holds_at_exactly_its_value_and_fails_one_step_beyond(worse, gate_models, gate_data, gate_config):
    good, _, _, rev_tfl = gate_models
    values = {k: worse["checks"][CHECK_OF[k]]["value"] for k in LIMITS}
    values["max_latency_ms"] = 1e6  # measured afresh each run: held from both sides below with 1e6 and 0
    at = run(good, rev_tfl, gate_data, gate_config, **values)
    for k in LIMITS:
        c = at["checks"][CHECK_OF[k]]
        assert c["passed"] is True, (k, c)
        if k != "max_latency_ms":
            assert c["value"] == c["limit"] == values[k]
    # the .tflite comes from the other bundle, which the source check reports: the only failure left
    assert at["checks"]["source"]["passed"] is False and len(at["failures"]) == 1 and at["passed"] is False
    beyond = {k: float(np.nextafter(v, -np.inf if k.startswith("max") else np.inf)) for k, v in values.items()}
    beyond["max_latency_ms"] = 0.0
    past = run(good, rev_tfl, gate_data, gate_config, **beyond)
    for k in LIMITS:
        assert past["checks"][CHECK_OF[k]]["passed"] is False, (k, past["checks"][CHECK_OF[k]])
    assert len(past["failures"]) == len(LIMITS) + 1


def test_the_same_model_passes_every_check(gate_models, gate_data, gate_config):
    good, _, good_tfl, _ = gate_models
    same = run(good, good_tfl, gate_data, gate_config, max_size_mb=100.0, max_latency_ms=1e6)
    assert same["passed"] is True and same["failures"] == []
    assert all(c["passed"] is True for c in same["checks"].values())
    assert same["checks"]["source"]["value"] == good.sha256
    assert abs(same["checks"]["auroc_drop"]["value"]) < 0.05 and same["agreement"] >= 0.9
    n = same["data"]["n"]
    assert n == sum(same["data"]["counts"].values()) and n >= 20


def test_an_edge_model_deciding_at_another_threshold_fails_the_contract_check(gate_models, gate_data, gate_config, tmp_path):
    from dataclasses import replace

    from edge.core.spec import ModelSpec

    good, _, good_tfl, _ = gate_models
    data = good_tfl.read_bytes()
    moved = tmp_path / "moved.tflite"
    moved.write_bytes(replace(ModelSpec.read(data, good_tfl), threshold=0.6).embed(data))
    r = run(good, moved, gate_data, gate_config, max_size_mb=100.0, max_latency_ms=1e6)
    c = r["checks"]["contract"]
    assert c["passed"] is False and len(c["value"]) == 1 and c["value"][0].startswith("threshold:")
    assert "0.6" in c["value"][0] and "0.5" in c["value"][0]
    assert r["passed"] is False and c["value"][0] in r["failures"]
    assert r["checks"]["source"]["passed"] is True
