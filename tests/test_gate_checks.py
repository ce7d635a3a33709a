"""The validation gate's checks and its limits, one function at a time: no model is trained,
converted or run (the end-to-end gate is tests/test_contract_gate.py). The source and contract
checks use the shipped artefacts: the phone's int8 model and the two embedded bundles.

These are the tests the mutation run of edge/app/validation.py uses (tests/mutation/modules.toml):
each mutant costs seconds here instead of the end-to-end file's model runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.app.validation import DEFAULT_THRESHOLDS, ValidationError, _checks, _Models, load_thresholds
from edge.core.bundle import load_bundle
from edge.core.runtime import EdgeModel

ASSETS = Path(__file__).resolve().parent.parent / "android_demo" / "app" / "src" / "main" / "assets"
LIMITS = ("max_accuracy_drop", "max_auroc_drop", "min_agreement", "max_latency_ms", "max_size_mb")
CHECK_OF = {
    "max_accuracy_drop": "accuracy_drop",
    "max_auroc_drop": "auroc_drop",
    "min_agreement": "agreement",
    "max_latency_ms": "latency_ms",
    "max_size_mb": "size_mb",
}


# ---- the gate's checks and its limits, one function at a time (no model run) -------------------

NO_LIMITS = dict.fromkeys(LIMITS)


def checks(th=None, full=None, edge=None, agree=None, p50=None, size=None, models=None):
    models = models or _Models(bundle=None)  # no edge model: the bundle is not looked at
    return _checks({**NO_LIMITS, **(th or {})}, full or {"accuracy": 0.5}, edge or {"accuracy": 0.5}, agree, p50, size, models)


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


def test_source_and_contract_checks():
    # the phone's int8 model was converted from the embedded default bundle; the types bundle is another one
    default, types = load_bundle("default"), load_bundle("types")
    edge = EdgeModel.load(ASSETS / "fracture_int8.tflite")
    same = checks(models=_Models(bundle=default, edge=edge))
    assert same["source"] == {"value": default.sha256, "limit": default.sha256, "op": "==", "passed": True, "messages": []}
    assert same["contract"] == {"value": [], "limit": "identical", "op": "==", "passed": True, "messages": []}
    other = checks(models=_Models(bundle=types, edge=edge, mismatches=["threshold: 0.6 here, 0.5 in the bundle"]))
    src = edge.spec.bundle_sha256
    assert src != types.sha256 and other["source"]["passed"] is False and other["source"]["value"] == src
    assert other["source"]["limit"] == types.sha256
    assert other["source"]["messages"] == [
        f"source: the edge model was converted from bundle {src[:12]}…, not from the full bundle {types.sha256[:12]}…"
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


@pytest.mark.parametrize("text", ["[tool.edge]\nname = 1\n", "[tool.other]\nx = 1\n", '[project]\nname = "x"\n', ""])
def test_a_config_without_the_section_keeps_the_defaults(tmp_path, text):
    cfg = tmp_path / "other.toml"
    cfg.write_text(text)  # a pyproject of another tool, or none at all: no [tool], no [tool.edge]
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
