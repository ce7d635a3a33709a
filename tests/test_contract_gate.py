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

from conv_helpers import copy_class_folder
from edge.app.validation import DEFAULT_THRESHOLDS, ValidationError, _checks, _Models, load_thresholds, validate
from edge.core.data import discover, load_canvases
from model_cache import TESTS, cached

SIZE = 48
LIMITS = ("max_accuracy_drop", "max_auroc_drop", "min_agreement", "max_latency_ms", "max_size_mb")
CHECK_OF = {
    "max_accuracy_drop": "accuracy_drop",
    "max_auroc_drop": "auroc_drop",
    "min_agreement": "agreement",
    "max_latency_ms": "latency_ms",
    "max_size_mb": "size_mb",
}


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


# ---- the gate's checks and its limits, one function at a time (no model run) -------------------

NO_LIMITS = dict.fromkeys(LIMITS)


def checks(th=None, full=None, edge=None, agree=None, p50=None, size=None, models=None):
    models = models or _Models(bundle=None)  # no edge model: the bundle is not looked at
    return _checks({**NO_LIMITS, **(th or {})}, full or {"accuracy": 0.5}, edge or {"accuracy": 0.5}, agree, p50, size, models)


@pytest.fixture(scope="module")
def gate_edge_models(gate_models):
    from edge.core.runtime import EdgeModel

    good, rev, good_tfl, rev_tfl = gate_models
    return good, EdgeModel.load(good_tfl), EdgeModel.load(rev_tfl)


@pytest.mark.parametrize(
    "limit,kwargs,value",
    [
        ("max_accuracy_drop", {"full": {"accuracy": 0.75}, "edge": {"accuracy": 0.5}}, 0.25),
        ("max_auroc_drop", {"full": {"accuracy": 0.5, "auroc": 0.875}, "edge": {"accuracy": 0.5, "auroc": 0.625}}, 0.25),
        ("min_agreement", {"agree": 0.875}, 0.875),
        ("max_latency_ms", {"p50": 3.5}, 3.5),
        ("max_size_mb", {"size": 3 * 2**19}, 1.5),  # bytes -> MiB
    ],
)
def test_each_check_at_its_limit_and_one_step_beyond(limit, kwargs, value):
    name = CHECK_OF[limit]
    at = checks({limit: value}, **kwargs)[name]
    assert at == {"value": value, "limit": value, "op": ">=" if limit.startswith("min") else "<=", "passed": True,
                  "messages": at["messages"]}  # fmt: skip
    beyond = float(np.nextafter(value, np.inf if limit.startswith("min") else -np.inf))
    assert checks({limit: beyond}, **kwargs)[name]["passed"] is False
    # a limit on the safe side by a whole unit passes too (the check is not an equality)
    assert checks({limit: value - 1 if limit.startswith("min") else value + 1}, **kwargs)[name]["passed"] is True


def test_the_messages_give_the_value_and_the_limit():
    c = checks(
        {"max_accuracy_drop": 0.02, "max_auroc_drop": 0.01, "min_agreement": 0.97, "max_latency_ms": 2.0, "max_size_mb": 1.0},
        full={"accuracy": 0.9, "auroc": 0.8},
        edge={"accuracy": 0.775, "auroc": 0.7},
        agree=0.95,
        p50=2.5,
        size=3 * 2**20 // 2,
    )
    assert c["accuracy_drop"]["messages"] == [
        "accuracy drop: the edge model's accuracy is 0.1250 below the full model's (allowed 0.0200)"
    ]
    assert c["auroc_drop"]["messages"] == ["AUROC drop: the edge model's AUROC is 0.1000 below the full model's (allowed 0.0100)"]
    assert c["agreement"]["messages"] == ["agreement: the two models agree on 95.00% of images (at least 97.00% required)"]
    assert c["latency_ms"]["messages"] == ["latency: the edge model's median latency is 2.50 ms (at most 2.00 ms allowed)"]
    assert c["size_mb"]["messages"] == ["size: the edge model is 1.50 MiB (at most 1.00 MiB allowed)"]
    assert [c[k]["passed"] for k in ("accuracy_drop", "auroc_drop", "agreement", "latency_ms", "size_mb")] == [False] * 5


def test_drops_are_full_minus_edge():
    c = checks(
        {"max_accuracy_drop": 0.0, "max_auroc_drop": 0.0}, {"accuracy": 0.5, "auroc": 0.5}, {"accuracy": 0.75, "auroc": 1.0}
    )
    assert (c["accuracy_drop"]["value"], c["auroc_drop"]["value"]) == (-0.25, -0.5)
    assert c["accuracy_drop"]["passed"] is True and c["auroc_drop"]["passed"] is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # no limit set: not checked
        {"th": {"max_auroc_drop": 0.01}},  # no AUROC (one class only): not checked
        {
            "th": {"max_auroc_drop": 0.01},
            "full": {"accuracy": 0.5, "auroc": float("nan")},
            "edge": {"accuracy": 0.5, "auroc": 0.5},
        },
        {"th": {"max_auroc_drop": 0.01}, "full": {"accuracy": 0.5, "auroc": 0.5}, "edge": {"accuracy": 0.5, "auroc": None}},
    ],
)
def test_an_unset_limit_or_a_missing_value_is_not_checked(kwargs):
    c = checks(**kwargs)["auroc_drop"]
    assert c["passed"] is None and c["messages"] == [] and c["op"] == "<="
    assert c["limit"] == kwargs.get("th", {}).get("max_auroc_drop")


def test_a_missing_size_or_latency_is_not_checked_even_with_a_limit():
    c = checks({"max_size_mb": 1.0, "max_latency_ms": 1.0, "min_agreement": 0.9})
    assert c["size_mb"]["value"] is None and c["size_mb"]["passed"] is None
    assert c["latency_ms"]["passed"] is None and c["agreement"]["passed"] is None
    assert "source" not in c and "contract" not in c  # no edge model: nothing to compare with the bundle


def test_source_and_contract_checks(gate_edge_models):
    good, edge_good, edge_rev = gate_edge_models
    same = checks(models=_Models(bundle=good, edge=edge_good))
    assert same["source"] == {"value": good.sha256, "limit": good.sha256, "op": "==", "passed": True, "messages": []}
    assert same["contract"] == {"value": [], "limit": "identical", "op": "==", "passed": True, "messages": []}
    other = checks(models=_Models(bundle=good, edge=edge_rev, mismatches=["threshold: 0.6 here, 0.5 in the bundle"]))
    src = edge_rev.spec.bundle_sha256
    assert src != good.sha256 and other["source"]["passed"] is False and other["source"]["value"] == src
    assert other["source"]["messages"] == [
        f"source: the edge model was converted from bundle {src[:12]}…, not from the full bundle {good.sha256[:12]}…"
    ]
    assert other["contract"]["passed"] is False
    assert other["contract"]["value"] == other["contract"]["messages"] == ["threshold: 0.6 here, 0.5 in the bundle"]


def test_thresholds_default_when_no_configuration_is_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_thresholds() == {**DEFAULT_THRESHOLDS, "source": "built-in defaults"}
    assert DEFAULT_THRESHOLDS == {
        "max_accuracy_drop": 0.02,
        "max_auroc_drop": 0.01,
        "min_agreement": 0.97,
        "max_latency_ms": None,
        "max_size_mb": None,
    }


def test_thresholds_from_the_nearest_pyproject_then_the_command_line(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.edge.validate]\nmax-auroc-drop = 0.5\nmax-size-mb = 3\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    got = load_thresholds()
    assert got == {**DEFAULT_THRESHOLDS, "max_auroc_drop": 0.5, "max_size_mb": 3.0, "source": str(tmp_path / "pyproject.toml")}
    assert type(got["max_size_mb"]) is float
    over = load_thresholds(overrides={"min_agreement": 1, "max_latency_ms": 7, "max_auroc_drop": None})
    assert (over["min_agreement"], over["max_latency_ms"], over["max_auroc_drop"]) == (1.0, 7.0, 0.5)
    assert type(over["min_agreement"]) is float
    assert over["source"] == f"{tmp_path / 'pyproject.toml'} + command line"
    only_none = load_thresholds(overrides={"min_agreement": None})
    assert only_none["source"] == str(tmp_path / "pyproject.toml") and only_none["min_agreement"] == 0.97


def test_a_config_without_the_section_keeps_the_defaults(tmp_path):
    cfg = tmp_path / "other.toml"
    cfg.write_text("[tool.edge]\nname = 1\n")
    assert load_thresholds(cfg) == {**DEFAULT_THRESHOLDS, "source": "built-in defaults"}
    assert load_thresholds(cfg, {"max_size_mb": 2})["source"] == "built-in defaults + command line"


@pytest.mark.parametrize(
    "text,words",
    [
        ("[tool.edge.validate]\nmax-acuracy-drop = 0.1\n", "unknown key 'max-acuracy-drop' in [tool.edge.validate]"),
        ("[tool.edge.validate\n", "configuration is not valid TOML"),
        (None, "configuration file not found"),
    ],
)
def test_a_bad_configuration_is_a_one_line_error(tmp_path, text, words):
    cfg = tmp_path / "cfg.toml"
    if text is not None:
        cfg.write_text(text)
    with pytest.raises(ValidationError) as e:
        load_thresholds(cfg)
    assert str(e.value).startswith(f"{cfg}: {words}") and "\n" not in str(e.value)
    if text and "unknown" in words:
        assert e.value.hint == "known: max-accuracy-drop, max-auroc-drop, min-agreement, max-latency-ms, max-size-mb"
