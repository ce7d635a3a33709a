"""Calibration folded into the final layer, the conservative operating threshold, and multi-data-set evaluation.

Pure functions are checked against independent references (scipy's binomtest, brute force); the
folding on a real tiny model and real radiographs, through Keras and TFLite."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import special
from scipy.stats import binomtest

from edge.core import calibration as cal
from edge.core.metrics import binary_metrics, bootstrap_gap, proportion_ci

# --- fitting -------------------------------------------------------------------------------


def _draw(t0: float, shift0: float, n: int = 20000, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, n)
    y = rng.random(n) < special.expit(z / t0 + shift0)
    return z, y.astype(int)


@pytest.mark.parametrize("t0", [0.5, 2.5])
def test_temperature_fit_recovers_the_true_temperature(t0):
    z, y = _draw(t0, 0.0)
    t = cal.fit_temperature(z, y, "binary")
    assert t == pytest.approx(t0, rel=0.06)
    # and it is the minimum of the NLL, not just close to the truth
    assert cal.nll(z, y, "binary", t) < min(cal.nll(z, y, "binary", t * 1.02), cal.nll(z, y, "binary", t / 1.02))


def test_platt_fit_recovers_scale_and_shift_and_temperature_alone_cannot():
    z, y = _draw(2.0, -1.5)
    t, shift = cal.fit(z, y, "binary", "platt")
    assert (t, shift) == (pytest.approx(2.0, rel=0.06), pytest.approx(-1.5, abs=0.08))
    t_only, zero = cal.fit(z, y, "binary", "temperature")
    assert zero == 0.0
    assert cal.summary(z, y, "binary", t, shift)["ece"] < cal.summary(z, y, "binary", t_only)["ece"]


def test_multiclass_temperature_and_summary():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (8000, 4))
    p = special.softmax(z / 3.0, axis=1)
    y = np.array([rng.choice(4, p=row) for row in p])
    assert cal.fit(z, y, "multiclass", "platt") == (pytest.approx(3.0, rel=0.08), 0.0)  # multi-class: T only
    s = cal.summary(z, y, "multiclass", 3.0)
    assert s["ece"] < 0.03 and s["nll"] < cal.summary(z, y, "multiclass")["nll"]


def test_nll_from_logits_stays_finite_where_probabilities_saturate():
    z, y = np.array([60.0, -60.0]), np.array([0, 1])  # float32 sigmoid gives exactly 1 and 0
    assert cal.nll(z, y, "binary") == pytest.approx(60.0)


# --- the conservative threshold --------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 5), (1, 1), (5, 9), (58, 64), (64, 64), (29, 30)])
def test_lower_bound_is_the_exact_interval_end(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.90, method="exact").low  # two-sided 90% = one-sided 95%
    assert float(cal.sensitivity_lower_bound(k, n, 0.95)) == pytest.approx(ref, abs=1e-9)


def _brute_force(y, p, target, confidence):
    """Every candidate threshold (every distinct score and between them), highest first."""
    pos = p[y.astype(bool)]
    for t in sorted(set(p.tolist()) | {x + 1e-9 for x in p.tolist()}, reverse=True):
        k = int((pos >= t).sum())
        if k and binomtest(k, len(pos)).proportion_ci(2 * confidence - 1, method="exact").low >= target:
            return t
    return None


@pytest.mark.parametrize("seed", range(4))
def test_threshold_is_the_highest_whose_bound_reaches_the_target(seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(80), np.zeros(200)].astype(int)
    p = np.round(np.r_[rng.beta(4, 2, 80), rng.beta(2, 4, 200)], 2)  # rounding makes ties
    t, pol = cal.choose_threshold_bound(y, p, 0.85, 0.95)
    assert pol["reached"] and t == _brute_force(y, p, 0.85, 0.95)
    kept = int((p[y == 1] >= t).sum())
    assert pol["val_sensitivity"] == kept / 80
    higher = p[(y == 1) & (p > t)].min()  # the next candidate up keeps fewer (ties may drop several at once)
    assert pol["val_sensitivity_lower_bound"] >= 0.85 > float(cal.sensitivity_lower_bound(int((p[y == 1] >= higher).sum()), 80))


def test_scores_tied_at_the_threshold_count_as_positive():
    # 30 positives: a 95% lower bound >= 0.9 needs all 30 (0.905); 29/30 gives 0.851
    pos = np.r_[np.linspace(0.95, 0.5, 26), [0.4, 0.4, 0.4, 0.4]]
    y, p = np.r_[np.ones(30), np.zeros(3)], np.r_[pos, [0.4, 0.1, 0.45]]
    t, pol = cal.choose_threshold_bound(y, p, 0.90)
    assert t == 0.4 and pol["val_sensitivity"] == 1.0  # the four tied at 0.4 are all kept
    m = binary_metrics(y, p, t, ["neg", "pos"], "pos")
    assert m["sensitivity"] == 1.0 and m["confusion"]["matrix"][0] == [1, 2]  # the negative at 0.4 is flagged too


def test_where_ceil_and_floor_of_the_point_estimate_differ_the_bound_asks_for_more():
    # 64 positives, target 0.9: the point rule needs ceil(57.6) = 58; the bound needs more
    y = np.r_[np.ones(64), np.zeros(64)].astype(int)
    p = np.r_[np.arange(64, 0, -1) / 100.0, np.full(64, 0.001)]
    need = int(np.argmax(cal.sensitivity_lower_bound(np.arange(65), 64) >= 0.9))
    assert need > 58
    t, pol = cal.choose_threshold_bound(y, p, 0.9)
    assert int((p[:64] >= t).sum()) == need and pol["val_sensitivity"] == need / 64


def test_too_few_positives_keeps_every_one_and_says_so():
    y = np.r_[np.ones(8), np.zeros(4)]
    p = np.r_[np.linspace(0.9, 0.3, 8), [0.1, 0.2, 0.5, 0.6]]
    t, pol = cal.choose_threshold_bound(y, p, 0.9)
    assert t == pytest.approx(0.3) and not pol["reached"] and pol["val_sensitivity"] == 1.0
    assert cal.choose_threshold_bound(np.zeros(3), np.r_[0.1, 0.2, 0.3])[0] == 0.5


# --- intervals and gaps in the evaluation -----------------------------------------------------


def test_sensitivity_and_specificity_intervals_come_from_the_counts():
    y = np.r_[np.ones(10), np.zeros(20)]
    p = np.r_[np.full(7, 0.9), np.full(3, 0.1), np.full(5, 0.9), np.full(15, 0.1)]
    m = binary_metrics(y, p, 0.5, ["neg", "pos"], "pos")
    assert m["sensitivity_ci95"] == proportion_ci(7, 10) and m["specificity_ci95"] == proportion_ci(15, 20)
    lo, hi = m["sensitivity_ci95"]
    assert lo < 0.7 < hi and (lo, hi) == pytest.approx(binomtest(7, 10).proportion_ci(0.95, "exact"))
    assert np.isnan(proportion_ci(0, 0)).all()


def test_gap_is_zero_for_the_same_data_and_clear_for_a_worse_site():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(150), np.zeros(300)]
    neg = rng.normal(0, 1, 300)
    good, bad = np.r_[rng.normal(1.5, 1, 150), neg], np.r_[rng.normal(0.3, 1, 150), neg]
    same = bootstrap_gap((y, good), (y, good), 0.5)
    assert same["auroc"]["difference"] == 0 and same["auroc"]["ci"][0] <= 0 <= same["auroc"]["ci"][1]
    worse = bootstrap_gap((y, good), (y, bad), 0.5)
    assert worse["auroc"]["ci"][1] < 0 and worse["sensitivity"]["difference"] < 0
    assert worse["specificity"]["difference"] == pytest.approx(0.0)  # the negatives are the same


# --- folding into a real model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def val_inputs(tiny_bundle, small_data):
    from edge.core.data import discover, load_canvases
    from edge.core.preprocess import normalize

    ds = discover(small_data).split("val")
    canv, kept, _ = load_canvases([s.path for s in ds.samples], tiny_bundle.spec)
    y = ds.labels_index(tiny_bundle.labels)[kept] == tiny_bundle.positive_index()
    return canv, normalize(canv, tiny_bundle.spec), y


@pytest.mark.parametrize("units", [1, 3])
def test_folding_is_exact_on_a_real_model(tiny_bundle, val_inputs, units):
    from edge.core.architectures import build_tiny
    from train.calibrate import fold_scaling, logits

    _, x, _ = val_inputs
    model = build_tiny(tiny_bundle.spec.input_shape, units)
    if units == 1:
        model.set_weights(tiny_bundle.load_model().get_weights())  # the trained one
    z = logits(model, x)
    shift = -0.7 if units == 1 else 0.0
    fold_scaling(model, 2.5, shift)
    got = model.predict(x, verbose=0)
    want = cal.probabilities(z, "binary" if units == 1 else "multiclass", 2.5, shift)
    assert np.abs(got.reshape(want.shape) - want).max() < 1e-5
    assert np.ptp(want) > 1e-3  # the probabilities do vary over the images


def test_quantization_aware_model_is_refused(tiny_bundle):
    import tensorflow_model_optimization as tfmot

    from edge.core.errors import BundleError
    from train.calibrate import final_dense

    qat = tfmot.quantization.keras.quantize_model(tiny_bundle.load_model())
    with pytest.raises(BundleError, match="quantization-aware"):
        final_dense(qat)


def test_trained_bundle_is_calibrated_and_records_it(tiny_bundle):
    c = tiny_bundle.card.calibration
    assert c["method"] == "platt" and c["fitted_on"] == "val" and c["folded_into"] == "head_out"
    assert c["after"]["val"]["nll"] <= c["before"]["val"]["nll"] + 1e-9  # fitted there: it cannot get worse
    assert {"ece", "brier", "nll"} <= set(c["after"]["test"])
    pol = tiny_bundle.card.contract.threshold_policy
    assert pol["rule"] == "sensitivity_lower_bound" and pol["probabilities"] == "calibrated"
    assert tiny_bundle.card.metrics["val"]["threshold"] == tiny_bundle.threshold


@pytest.fixture(scope="module")
def calibrated(tiny_bundle, small_data, tmp_path_factory):
    from train.calibrate import calibrate_bundle

    return calibrate_bundle(tiny_bundle.path, small_data, tmp_path_factory.mktemp("cal") / "b", method="temperature")


def test_calibrate_bundle_writes_a_verified_new_bundle(tiny_bundle, calibrated, val_inputs):
    from edge.core.bundle import load_bundle
    from train.calibrate import logits

    again = load_bundle(calibrated.path)  # hashes and contract verified
    c = again.card.calibration
    assert c["method"] == "temperature" and c["shift"] == 0.0 and c["previous"] == tiny_bundle.card.calibration
    assert again.model_id.endswith("-calibrated") and again.sha256 != tiny_bundle.sha256
    _, x, y = val_inputs
    p = again.predict_proba(x)[:, again.positive_index()]
    assert np.abs(p - cal.probabilities(logits(tiny_bundle.load_model(), x), "binary", c["temperature"])).max() < 1e-5
    t, pol = cal.choose_threshold_bound(y, p, 0.9)
    t = cal.snap_to_output_grid(t)  # stored on the int8 output grid
    assert again.threshold == pytest.approx(t) and again.card.contract.threshold_policy["n_positives"] == int(y.sum())
    assert load_bundle(tiny_bundle.path).sha256 == tiny_bundle.sha256  # the source is untouched


def test_calibrated_bundle_converts_and_tflite_outputs_calibrated_probabilities(calibrated, val_inputs, tmp_path):
    from convert.tflite import convert_bundle
    from edge.core.runtime import EdgeModel

    canv, x, _ = val_inputs
    pi = calibrated.positive_index()
    keras_p = calibrated.predict_proba(x)[:, pi]
    for precision in ("float32", "int8"):
        conv = convert_bundle(calibrated, precision, out=tmp_path / f"m_{precision}.tflite", report=False)
        p = EdgeModel.load(conv.path).predict_canvases(canv)[:, pi]
        assert np.abs(p - keras_p).max() < (1e-4 if precision == "float32" else 0.06), precision


def test_calibrate_refuses_qat_and_overwriting_its_source(tiny_bundle, small_data, tmp_path):
    from dataclasses import replace

    from edge.core.bundle import save_bundle
    from edge.core.errors import BundleError, EdgeError
    from train.calibrate import calibrate_bundle

    with pytest.raises(EdgeError, match="new directory"):
        calibrate_bundle(tiny_bundle.path, small_data, tiny_bundle.path)
    # the refusal is decided by the card before any weights are read (final_dense refuses a real
    # QAT graph: test_quantization_aware_model_is_refused), so the plain weights stand in here
    card = replace(tiny_bundle.card, contract=replace(tiny_bundle.card.contract, qat=True), files={}, bundle_sha256="")
    qat = save_bundle(tmp_path / "qat", tiny_bundle.load_model(), card)
    with pytest.raises(BundleError, match="quantization-aware") as e:
        calibrate_bundle(qat.path, small_data, tmp_path / "out")
    assert "edge compress" in e.value.line() and not (tmp_path / "out").exists()


# --- the CLI ---------------------------------------------------------------------------------


def _run(*args):
    from edge.app.cli import main

    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


def test_cli_calibrate_and_its_bad_input(tiny_bundle, small_data, tmp_path):
    code, out = _run("calibrate", tiny_bundle.path, "--data", small_data, "-o", tmp_path / "c")
    assert code == 0, out
    assert "platt: logit /" in out and "threshold" in out
    card = json.loads((tmp_path / "c" / "model_card.json").read_text())
    assert card["calibration"]["after"]["val"]["n"] == 16
    code, out = _run("calibrate", tiny_bundle.path, "--data", small_data, "--split", "nope", "-o", tmp_path / "d")
    assert code != 0 and "no 'nope' split" in out and "Traceback" not in out
    assert not (tmp_path / "d").exists()


def test_cli_evaluate_several_data_sets_reports_each_and_the_gap(calibrated, small_data, tmp_path):
    code, out = _run(
        "evaluate", calibrated.path, "--data", small_data, "--data", small_data, "--split", "val", "--report", tmp_path / "r"
    )
    assert code == 0, out
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert list(rep["datasets"]) == [f"{small_data.name}-1", f"{small_data.name}-2"]  # same folder name: numbered
    first, second = rep["datasets"].values()
    assert first["n"] == second["n"] == 16 and first["sensitivity_ci95"] == second["sensitivity_ci95"]
    (gap,) = rep["gaps"].values()
    assert gap["auroc"]["difference"] == 0.0 and gap["auroc"]["ci"][0] <= 0 <= gap["auroc"]["ci"][1]
    for name in rep["datasets"]:
        assert (tmp_path / "r" / name / "report.json").is_file() and (tmp_path / "r" / name / "roc.png").is_file()
    assert "Gap from the reference" in (tmp_path / "r" / "report.md").read_text()
    code, out = _run("evaluate", calibrated.path, "--data", small_data, "--split", "val")
    assert code == 0 and "95% exact interval" in out


def test_cli_evaluate_against_pairs_two_models_on_the_same_images(tiny_bundle, calibrated, small_data, tmp_path):
    # the tiny model against its calibrated copy (temperature only: the same ranking, other probabilities)
    code, out = _run(
        "evaluate", tiny_bundle.path, "--against", calibrated.path, "--data", small_data, "--split", "val",
        "--report", tmp_path / "ab",
    )  # fmt: skip
    assert code == 0, out
    rep = json.loads((tmp_path / "ab" / "report.json").read_text())
    a, b = rep["models"]["A"], rep["models"]["B"]
    assert rep["n"] == a["n"] == b["n"] == 16 and a["model"]["sha256"] != b["model"]["sha256"]
    d = rep["difference"]
    assert d["auroc"]["difference"] == pytest.approx(b["auroc"] - a["auroc"], abs=1e-12) == 0.0  # same ranking
    for k in ("sensitivity", "specificity"):
        assert d[k]["difference"] == pytest.approx(b[k] - a[k], abs=1e-12)
    (tn_a, fp_a), (fn_a, tp_a) = a["confusion"]["matrix"]
    (tn_b, fp_b), (fn_b, tp_b) = b["confusion"]["matrix"]
    # discordant counts can only explain the difference in right calls between the two confusion matrices
    assert d["sensitivity"]["only_b"] - d["sensitivity"]["only_a"] == tp_b - tp_a
    assert d["specificity"]["only_b"] - d["specificity"]["only_a"] == tn_b - tn_a
    for sub in ("A", "B"):
        assert (tmp_path / "ab" / sub / "report.json").is_file() and (tmp_path / "ab" / sub / "roc.png").is_file()
    assert (tmp_path / "ab" / "roc.png").is_file() and "McNemar" in (tmp_path / "ab" / "report.md").read_text()
    assert "B - A on the same images" in out


def test_cli_evaluate_against_refuses_what_cannot_be_paired(tiny_bundle, small_data, tmp_path):
    code, out = _run("evaluate", tiny_bundle.path, "--against", "types", "--data", small_data, "--report", tmp_path / "x")
    assert code == 2 and "only models of the same task and labels can be compared" in out and "Traceback" not in out
    assert not (tmp_path / "x").exists()
    code, out = _run("evaluate", tiny_bundle.path, "--against", tiny_bundle.path, "--data", small_data, "--data", small_data)
    assert code == 2 and "give one --data" in out


def test_operating_point_snaps_down_to_the_int8_output_grid_and_recounts():
    from train.calibrate import operating_point

    # 20 positives; the rule's threshold is a positive's score, 0.0306 (between grid half steps 7.5 and 8.5)
    y = np.r_[np.ones(20), np.zeros(20)].astype(bool)
    p = np.r_[np.linspace(0.2, 0.9, 18), 0.0306, 0.0295, np.linspace(0.001, 0.02, 20)]
    t, pol = operating_point("binary", y, p, 0.75)  # 19 of 20 reach it (lower bound 0.78): threshold 0.0306
    assert pol["output_grid"] == {"steps": 256, "snapped_from": pytest.approx(0.0306)}
    assert t == 7.5 / 256  # 0.0293: the largest half step below 0.0306, which also keeps 0.0295
    assert pol["val_sensitivity"] == 20 / 20  # recounted at 0.0293: 0.0295 is now kept too
    assert pol["val_sensitivity_lower_bound"] == pytest.approx(cal.sensitivity_lower_bound(20, 20)[()])
    # a threshold already on a half step stays, and no grid record is written
    t2, pol2 = operating_point("binary", y, np.where(p == 0.0306, 8.5 / 256, p), 0.75)
    assert "output_grid" not in pol2 and t2 == 8.5 / 256
