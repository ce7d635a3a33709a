"""The fracture-type model: source grouping, grouped cross-validation, the `types` bundle name,
the CLI, and the server's opt-in field, on the real bone_break_types pictures shipped in tests/data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from edge.app.bench.live_server import LiveServer
from edge.app.cli import main
from edge.app.server import ServerSettings, create_app
from edge.core import bundle as bundle_module
from edge.core.audit import name_stem, same_source, source_groups
from edge.core.bundle import TYPES_BUNDLE, is_bundle_ref, load_bundle, resolve_bundle
from edge.core.errors import BundleError, DataError
from edge.core.imageio import read_image
from edge.core.preprocess import preprocess

TYPES = [
    "avulsion",
    "comminuted",
    "fracture_dislocation",
    "greenstick",
    "hairline",
    "impacted",
    "longitudinal",
    "oblique",
    "pathological",
    "spiral",
]


# --- grouping by source ------------------------------------------------------------------------
def test_name_stem_drops_export_hash_old_extension_and_ink():
    assert name_stem("35765-galleyfig1a_jpeg.rf90773a110b4171d25a_dc5f63e5.jpg") == "35765-galleyfig1a"
    assert name_stem("35765-galleyfig1a_jpeg_9bc7b0ca.jpg") == "35765-galleyfig1a"
    assert name_stem("Inkedfracture-interpretation-for-medical-student_c47da146.jpg") == (
        "fracture-interpretation-for-medical-student"
    )
    assert same_source("13018_2019_1385_fig1_html", "13018_2019_1385_fig3_html")  # one article's figures
    assert not same_source("images27", "images25")  # a browser's default names say nothing
    assert not same_source("hqdefault", "mqdefault")
    assert not same_source("a-plain-radiograph-of-the-femur", "lateral-view-of-the-left-wrist")


@pytest.fixture(scope="module")
def bone_types() -> Path:
    """The bundled subset whatever --data says: these tests count its files and its known copies
    (the full set has a truncated JPEG and other groups)."""
    return Path(__file__).parent / "data" / "bone_break_types"


def test_source_groups_on_the_bundled_types(bone_types):
    g = source_groups(bone_types)
    assert len(g.paths) == sum(1 for _ in bone_types.rglob("*.jpg")) and not g.unreadable
    by_name = {p.name: int(gid) for p, gid in zip(g.paths, g.group, strict=True)}
    # the same source exported twice under near-identical names
    assert by_name["35765-galleyfig1a_jpeg.rf90773a110b4171d25a_dc5f63e5.jpg"] == by_name["35765-galleyfig1a_jpeg_9bc7b0ca.jpg"]
    assert by_name["41598_2020_64479_Fig1_HTML_png_2adfee42.jpg"] == by_name["41598_2020_64479_Fig1_HTMLg_e2022f19.jpg"]
    # unrelated pictures stay apart
    assert by_name["35765-galleyfig1a_jpeg_9bc7b0ca.jpg"] != by_name["12891_2019_2585_Fig5_HTML_png_9d650aab.jpg"]
    assert 0 < len(g.paths) - g.n_groups < 10


def test_near_copy_under_another_type_is_a_conflict(tmp_path, bone_types):
    root = tmp_path / "d"
    shutil.copytree(bone_types, root)
    src = sorted((root / "train" / "spiral").glob("*.jpg"))[0]
    px = read_image(src).pixels
    from PIL import Image

    # a re-encoded, slightly cropped copy filed under another type, with an unrelated name
    Image.fromarray(px[2:-2, 2:-2]).save(root / "train" / "oblique" / "copy.jpg", quality=80)
    g = source_groups(root)
    names = {g.paths[i].name for i in g.conflicting()}
    assert names == {src.name, "copy.jpg"}


# --- training: grouped CV, the head folded into the registry's graph --------------------------------
@pytest.fixture(scope="module")
def types_bundle(tmp_path_factory, tiny_bundle, bone_types):
    from train.types import TypesConfig, train_types

    out = tmp_path_factory.mktemp("types_run")
    cfg = TypesConfig(data=str(bone_types), out=str(out), base=str(tiny_bundle.path), views=1, folds=2, repeats=1)
    return train_types(cfg)


def test_train_types_bundle_contract_and_cv(types_bundle, tiny_bundle, bone_types):
    b = load_bundle(types_bundle.path)  # hashes verified, weights-only load through the registry
    assert b.task == "multiclass" and b.labels == TYPES and b.arch == tiny_bundle.arch
    cv = b.card.metrics["cv"]
    assert len(cv["folds"]) == 2 and sum(f["n"] for f in cv["folds"]) == cv["out_of_fold"]["n"]
    assert 0.0 <= cv["top1"]["mean"] <= cv["top3"]["mean"] <= 1.0
    m = np.array(cv["out_of_fold"]["confusion"]["matrix"])
    assert m.shape == (10, 10) and m.sum() == cv["out_of_fold"]["n"]
    st = b.card.extra["accuracy_statement"]
    assert f"top-1 {cv['top1']['mean']:.2f}" in st and "chance" in st
    assert ("a guess, not a finding" in st) == b.card.extra["weak"]
    assert b.card.training["base_bundle"]["sha256"] == tiny_bundle.sha256
    assert "confusion.png" in b.card.files
    # the backbone is the base model's, untouched: its pooled features are identical
    from train.types import feature_model

    x = preprocess(read_image(sorted(bone_types.rglob("*.jpg"))[0]).pixels, b.spec)[None]
    np.testing.assert_allclose(
        feature_model(b).predict(x, verbose=0), feature_model(tiny_bundle).predict(x, verbose=0), atol=1e-6
    )


def test_train_types_refuses_one_class(tmp_path, tiny_bundle, bone_types):
    from train.types import TypesConfig, train_types

    root = tmp_path / "one"
    shutil.copytree(bone_types / "train" / "spiral", root / "train" / "spiral")
    with pytest.raises(DataError, match="at least two types"):
        train_types(TypesConfig(data=str(root), out=str(tmp_path / "o"), base=str(tiny_bundle.path), views=0, folds=2))


def test_cli_train_task_types_refuses_options_it_would_ignore(bone_types, tmp_path):
    r = CliRunner().invoke(main, ["train", "--task", "types", "--data", str(bone_types), "--arch", "vgg16", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "--task types does not take --arch" in r.output
    r = CliRunner().invoke(main, ["train", "--data", str(bone_types), "--views", "3", "-o", str(tmp_path)])
    assert r.exit_code == 2 and "--views applies to --task types and to --weights imagenet --recipe probe only" in r.output


# --- the `types` name ------------------------------------------------------------------------------
def test_types_name_resolves_to_the_embedded_bundle(tmp_path, monkeypatch):
    assert resolve_bundle("types") == TYPES_BUNDLE and resolve_bundle(None) == resolve_bundle("default")
    b = load_bundle("types")
    assert b.task == "multiclass" and b.labels == TYPES
    size = sum(p.stat().st_size for p in TYPES_BUNDLE.iterdir())
    assert size < 10 * 1024 * 1024
    cv = b.card.metrics["cv"]
    assert f"top-1 {cv['top1']['mean']:.2f}" in b.card.extra["accuracy_statement"]
    # a folder the user named 'types' keeps its meaning
    monkeypatch.chdir(tmp_path)
    (tmp_path / "types").mkdir()
    assert resolve_bundle("types") == Path("types")
    assert not is_bundle_ref("types")
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle("types")


def test_missing_embedded_types_bundle_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_module, "TYPES_BUNDLE", tmp_path / "gone")
    with pytest.raises(BundleError, match="embedded 'types' bundle is missing"):
        load_bundle("types")


def test_cli_predict_and_evaluate_types(bone_types, tmp_path):
    img = sorted((bone_types / "train" / "spiral").glob("*.jpg"))[0]
    r = CliRunner().invoke(main, ["predict", "types", str(img)])
    assert r.exit_code == 0, r.output
    assert "model: bone-break-types" in r.output and str(img) in r.output
    assert "cross-validation" in r.output
    r = CliRunner().invoke(main, ["predict", "types", str(tmp_path / "missing.jpg")])
    assert r.exit_code != 0 and "missing.jpg" in r.output
    rep = tmp_path / "rep"
    twice = ["--data", str(bone_types), "--data", str(bone_types)]
    r = CliRunner().invoke(main, ["evaluate", "types", *twice, "--report", str(rep)])
    assert r.exit_code == 0, r.output
    assert "cross-validation" in r.output
    # two sets: each reported, and the multi-class gap (accuracy) of the second from the first
    (gap,) = json.loads((rep / "report.json").read_text())["gaps"].values()
    assert gap["accuracy"]["difference"] == 0.0 and gap["accuracy"]["ci"][0] <= 0 <= gap["accuracy"]["ci"][1]


def test_cli_evaluate_types_against_another_types_model(types_bundle, bone_types, tmp_path):
    # the embedded types model against one trained here on tiny features: the paired multi-class difference
    r = CliRunner().invoke(
        main,
        ["evaluate", "types", "--against", str(types_bundle.path), "--data", str(bone_types), "--report", str(tmp_path / "r")],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    a, b, g = rep["models"]["A"], rep["models"]["B"], rep["difference"]["accuracy"]
    assert rep["task"] == "multiclass" and rep["n"] == a["n"] == b["n"] == 50
    assert g["difference"] == pytest.approx(b["accuracy"] - a["accuracy"], abs=1e-12)
    assert g["only_b"] - g["only_a"] == round(rep["n"] * (b["accuracy"] - a["accuracy"]))
    assert g["ci"][0] <= g["difference"] <= g["ci"][1] and 0 <= g["p_mcnemar"] <= 1
    assert r.output.count("measured when trained") == 2  # each weak model's own accuracy statement


# --- the server's opt-in field ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def srv_types(tiny_bundle, types_bundle):
    s = LiveServer(create_app(tiny_bundle, ServerSettings(no_auth=True), types=types_bundle))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def srv_plain(tiny_bundle):
    s = LiveServer(create_app(tiny_bundle, ServerSettings(no_auth=True)))
    yield s
    s.stop()


def _post(srv, data: bytes, params=None, **form):
    return httpx.post(
        f"{srv.url}/v1/predict", files={"file": ("x.jpg", data, "image/jpeg")}, data=form or None, params=params, timeout=60
    )


def test_server_types_field_only_when_asked(srv_types, types_bundle, tiny_bundle, bone_types):
    img = sorted((bone_types / "train" / "greenstick").glob("*.jpg"))[0]
    plain = _post(srv_types, img.read_bytes())
    assert plain.status_code == 200 and "fracture_type" not in plain.json()
    asked = _post(srv_types, img.read_bytes(), types="true")
    assert asked.status_code == 200, asked.text
    d = asked.json()
    # the fracture answer is the same with or without the type
    assert {k: v for k, v in d.items() if k not in ("fracture_type", "timings_ms")} == {
        k: v for k, v in plain.json().items() if k != "timings_ms"
    }
    t = d["fracture_type"]
    want = types_bundle.predict_proba(preprocess(read_image(img).pixels, types_bundle.spec)[None])[0]
    assert t["probabilities"] == pytest.approx(dict(zip(TYPES, want, strict=True)), abs=1e-5)
    assert t["label"] == TYPES[int(np.argmax(want))] and t["top3"][0] == t["label"] and len(t["top3"]) == 3
    assert t["model"]["sha256"] == types_bundle.sha256
    assert t["cv_top1"] == pytest.approx(types_bundle.card.metrics["cv"]["top1"]["mean"])
    assert t["accuracy"] == types_bundle.card.extra["accuracy_statement"] and t["weak"] == types_bundle.card.extra["weak"]
    assert "types" in d["timings_ms"]
    assert "fracture_type" in _post(srv_types, img.read_bytes(), params={"types": "1"}).json()


def test_server_types_bad_inputs(srv_types, srv_plain, bone_types):
    img = sorted((bone_types / "train" / "hairline").glob("*.jpg"))[0].read_bytes()
    r = _post(srv_types, img, types="maybe")
    assert r.status_code == 422 and r.json()["error"]["message"] == "types must be true or false"
    r = _post(srv_plain, img, types="true")
    assert r.status_code == 422 and r.json()["error"]["code"] == "types_unavailable"
    r = _post(srv_types, b"not an image", types="true")
    assert r.status_code == 415
    card = httpx.get(f"{srv_types.url}/openapi.json").json()
    props = card["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert props["types"]["default"] is False
    assert json.dumps(props)  # the schema is valid JSON
