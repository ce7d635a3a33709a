"""The bundle's integrity on every file it lists, not only model.h5: each file changed, each file
removed, the card's own hashes edited, each contract field (threshold, labels, preprocessing...)
edited, must make load_bundle raise BundleError naming the file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.core import card as card_mod
from edge.core.bundle import load_bundle, save_bundle, to_probabilities, update_card
from edge.core.card import CONTRACT_KEYS, VERSION, Contract, ModelCard
from edge.core.data import load_canvases
from edge.core.errors import BundleError
from edge.core.preprocess import PreprocessSpec, normalize

SPEC = PreprocessSpec(size=(16, 16))
CARD = ModelCard(
    Contract.create("tiny", "binary", ["not_fractured", "fractured"], "fractured", 0.37, SPEC), model_id="contract-bundle"
)


@pytest.fixture(scope="module")
def canvases(fracatlas: Path) -> np.ndarray:
    paths = sorted((fracatlas / "train" / "fractured").glob("*.jpg"))[:6]
    canv, _, _ = load_canvases(paths, SPEC, skip_bad=True)
    assert len(canv) >= 3
    return canv


@pytest.fixture(scope="module")
def model():
    # the card's architecture: a bundle's model is rebuilt from the registry, then loaded as weights only
    from edge.core._tf import keras
    from edge.core.architectures import get_arch

    keras.utils.set_random_seed(3)
    return get_arch("tiny").build(SPEC.input_shape, 1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, model, canvases):
    src = tmp_path_factory.mktemp("src") / "notes.json"
    src.write_text('{"copied": true}')
    extra = {"notes/readme.txt": "trained on FracAtlas", "plot.png": b"\x89PNG not really", "copied.json": src}
    return save_bundle(tmp_path_factory.mktemp("b") / "bundle", model, CARD, extra=extra, calibration=canvases)


LISTED = ["model.h5", "calibration.npz", "notes/readme.txt", "plot.png", "copied.json"]


def one_line_naming(e: pytest.ExceptionInfo, path: Path) -> None:
    """The user-facing form: a message, the file it is about, one line (the wording is not pinned)."""
    err = e.value
    assert isinstance(err.message, str) and err.message.strip()
    assert err.path == str(path)
    assert "\n" not in str(err) and str(err).startswith(f"{path}: {err.message}")


@pytest.fixture
def copy(saved, tmp_path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(saved.path, dest)
    return dest


def test_every_file_is_listed_with_its_own_hash(saved, canvases):
    files = saved.card.files
    assert sorted(files) == sorted(LISTED)
    for name in LISTED:
        assert files[name] == hashlib.sha256((saved.path / name).read_bytes()).hexdigest()
    assert (saved.path / "notes/readme.txt").read_text() == "trained on FracAtlas"
    assert (saved.path / "copied.json").read_text() == '{"copied": true}'
    assert len(saved.sha256) == 64 and saved.sha256 != files["model.h5"]
    np.testing.assert_array_equal(saved.calibration_canvases(), canvases)
    on_disk = json.loads((saved.path / "model_card.json").read_text())
    assert on_disk == saved.card.to_dict() and on_disk["files"] == files
    assert on_disk["format"] == "fracture-edge/bundle" and on_disk["version"] == VERSION == 2 and saved.card.created
    assert saved.sha256 == card_mod.content_hash(files, saved.card.contract)


def test_bundle_hash_depends_on_the_files(tmp_path, model, canvases):
    a = save_bundle(tmp_path / "a", model, CARD, extra={"x.txt": "one"})
    b = save_bundle(tmp_path / "b", model, CARD, extra={"x.txt": "two"})
    c = save_bundle(tmp_path / "c", model, CARD, extra={"x.txt": "one"})
    assert a.sha256 != b.sha256
    assert a.card.files["x.txt"] == c.card.files["x.txt"]
    assert a.calibration_canvases() is None


@pytest.mark.parametrize("name", LISTED)
def test_a_changed_file_is_refused(copy, name):
    f = copy / name
    f.write_bytes(f.read_bytes() + b"\0")
    with pytest.raises(BundleError) as e:
        load_bundle(copy)
    one_line_naming(e, f)
    assert e.value.hint  # says what to do about it
    load_bundle(copy, verify=False)  # verification is what refused it


@pytest.mark.parametrize("name", LISTED)
def test_a_same_size_edit_is_refused(copy, name):
    f = copy / name
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        load_bundle(copy)


@pytest.mark.parametrize("name", LISTED)
def test_a_missing_file_is_refused(copy, name):
    (copy / name).unlink()
    with pytest.raises(BundleError) as e:
        load_bundle(copy)
    one_line_naming(e, copy / name)


def _edit_card(path: Path, fn) -> None:
    card = json.loads((path / "model_card.json").read_text())
    fn(card)
    (path / "model_card.json").write_text(json.dumps(card))


@pytest.mark.parametrize("name", LISTED)
def test_a_card_whose_hash_of_one_file_was_edited_is_refused(copy, name):
    _edit_card(copy, lambda c: c["files"].__setitem__(name, "0" * 64))
    with pytest.raises(BundleError):
        load_bundle(copy)


@pytest.mark.parametrize("name", [n for n in LISTED if n != "model.h5"])
def test_a_card_that_drops_a_file_from_its_list_is_refused(copy, name):
    # the files still match their hashes, but bundle_sha256 was made over the full list
    _edit_card(copy, lambda c: c["files"].pop(name))
    with pytest.raises(BundleError):
        load_bundle(copy)


def test_a_card_without_the_model_is_refused_even_with_a_matching_bundle_hash(copy):
    def drop_model(c):
        c["files"].pop("model.h5")
        c["bundle_sha256"] = card_mod.content_hash(c["files"], ModelCard.from_dict(c, "card").contract)

    _edit_card(copy, drop_model)
    with pytest.raises(BundleError, match="model.h5") as e:
        load_bundle(copy)
    one_line_naming(e, copy / "model_card.json")


def test_an_edited_bundle_hash_is_refused(copy):
    _edit_card(copy, lambda c: c.__setitem__("bundle_sha256", "f" * 64))
    with pytest.raises(BundleError) as e:
        load_bundle(copy)
    one_line_naming(e, copy / "model_card.json")


def test_a_newer_bundle_version_says_to_upgrade(copy):
    _edit_card(copy, lambda c: c.__setitem__("version", VERSION + 1))
    with pytest.raises(BundleError) as e:
        load_bundle(copy)
    one_line_naming(e, copy / "model_card.json")
    assert str(VERSION + 1) in e.value.message and "upgrade" in e.value.hint


def test_a_reordered_file_list_still_verifies(copy):
    # JSON tools may reorder keys: the bundle hash is over the sorted list, so order does not matter
    _edit_card(copy, lambda c: c.__setitem__("files", dict(reversed(list(c["files"].items())))))
    assert load_bundle(copy).card.files


def _as_version_one(c: dict) -> None:
    """What a version-1 card was: the hash over the files only."""
    c["version"] = 1
    c["bundle_sha256"] = card_mod.files_hash_v1(c["files"])


def test_a_card_without_a_version_is_refused_and_a_version_one_card_still_loads(copy):
    _edit_card(copy, lambda c: c.pop("version"))
    with pytest.raises(BundleError, match="version") as e:
        load_bundle(copy)
    one_line_naming(e, copy / "model_card.json")
    _edit_card(copy, _as_version_one)
    old = load_bundle(copy)
    assert old.card.version == 1 and old.labels == ["not_fractured", "fractured"] and old.threshold == 0.37


# one edit per contract field; the self-consistent ones are refused by the hash alone
CONTRACT_EDITS = {
    "arch": lambda c: c.__setitem__("arch", "custom"),
    "task": lambda c: c.__setitem__("task", "multiclass"),
    "labels": lambda c: c.__setitem__("labels", ["fractured", "not_fractured"]),
    "positive_label": lambda c: c.__setitem__("positive_label", "not_fractured"),
    "threshold": lambda c: c.__setitem__("threshold", 0.38),
    "threshold_policy": lambda c: c.__setitem__("threshold_policy", {"target_sensitivity": 0.9}),
    "preprocess": lambda c: c["preprocess"].__setitem__("std", [0.5]),
    "input": lambda c: c["input"].__setitem__("dtype", "uint8"),
    "output": lambda c: c["output"].__setitem__("activation", "softmax"),
    "qat": lambda c: c.__setitem__("qat", True),
}
CONSISTENT = ("arch", "labels", "positive_label", "threshold", "threshold_policy", "preprocess", "qat")


def test_every_contract_field_has_an_edit():
    assert sorted(CONTRACT_EDITS) == sorted(CONTRACT_KEYS)


@pytest.mark.parametrize("key", CONTRACT_KEYS)
def test_an_edited_contract_field_is_refused(copy, key):
    before = load_bundle(copy).card.contract
    _edit_card(copy, CONTRACT_EDITS[key])
    with pytest.raises(BundleError) as e:
        load_bundle(copy)
    one_line_naming(e, copy / "model_card.json")
    if key in CONSISTENT:  # a valid-looking contract: only bundle_sha256 catches it
        assert "bundle_sha256" in e.value.message
        assert load_bundle(copy, verify=False).card.contract != before


def _missing(key: str):
    return pytest.param(lambda c: c.pop(key), id=f"no-{key}")


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda c: c.__setitem__("format", "something-else"), id="format"),
        pytest.param(lambda c: c.__setitem__("version", VERSION + 1), id="newer-version"),
        pytest.param(lambda c: c.__setitem__("version", 0), id="version-0"),
        pytest.param(lambda c: c.__setitem__("threshold", 1.5), id="threshold-1.5"),
        pytest.param(lambda c: c.__setitem__("positive_label", "elbow"), id="positive-label-elbow"),
        *[_missing(k) for k in ("labels", "task", "preprocess", "files", "bundle_sha256", *CONTRACT_KEYS)],
    ],
)
def test_malformed_cards_are_refused(copy, edit):
    _edit_card(copy, edit)
    with pytest.raises(BundleError, match="model_card.json") as e:
        load_bundle(copy, verify=False)
    one_line_naming(e, copy / "model_card.json")


def test_not_a_bundle(tmp_path, copy):
    with pytest.raises(BundleError) as e:
        load_bundle(tmp_path / "nowhere")
    one_line_naming(e, tmp_path / "nowhere")
    assert e.value.hint
    (copy / "model_card.json").write_text("{not json")
    with pytest.raises(BundleError, match="model_card.json") as e:
        load_bundle(copy)
    one_line_naming(e, copy / "model_card.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "empty")


def test_the_embedded_default_is_loaded_when_no_path_is_given(tmp_path, monkeypatch):
    import edge.core.bundle as bundle_module

    assert load_bundle(None).path == bundle_module.DEFAULT_BUNDLE
    missing = tmp_path / "default_bundle"
    monkeypatch.setattr(bundle_module, "DEFAULT_BUNDLE", missing)
    with pytest.raises(BundleError) as e:  # an installation without its default says so, not "not a bundle"
        load_bundle()
    one_line_naming(e, missing)
    assert "default" in e.value.message and e.value.hint is None


def test_update_card_keeps_the_hashes_valid(copy):
    b = load_bundle(copy)
    model = b.load_model()
    nb = update_card(b, metrics={"auroc": 0.75}, notes="re-evaluated")
    assert nb.path == copy and nb.load_model() is model  # the loaded model is kept, not loaded again
    again = load_bundle(copy)
    assert again.card.metrics == {"auroc": 0.75} == nb.card.metrics and again.card.to_dict()["notes"] == "re-evaluated"
    assert again.card.files == b.card.files and again.sha256 == b.sha256 and again.threshold == 0.37


@pytest.mark.parametrize("key", [*CONTRACT_KEYS, "files", "bundle_sha256", "version"])
def test_update_card_refuses_contract_fields(copy, key):
    b = load_bundle(copy)
    card_bytes = (copy / "model_card.json").read_bytes()
    with pytest.raises(BundleError, match=key):
        update_card(b, **{key: 0.41})
    assert (copy / "model_card.json").read_bytes() == card_bytes  # nothing written
    assert load_bundle(copy).threshold == 0.37


def test_what_the_card_says(saved, copy):
    assert (saved.labels, saved.task, saved.positive_label, saved.threshold) == (
        ["not_fractured", "fractured"],
        "binary",
        "fractured",
        0.37,
    )
    assert saved.positive_index() == 1 and saved.spec == SPEC and saved.model_id == "contract-bundle"
    assert saved.arch == "tiny"
    assert saved.summary() == "contract-bundle (tiny, binary, 2 classes, 16x16x1)"
    _edit_card(copy, lambda c: c.pop("model_id"))
    assert load_bundle(copy).model_id == "model"  # the record may lack fields; the hash still holds
    # a version-1 card wrote no arch or threshold: migrated with the defaults it was read with
    _edit_card(copy, lambda c: [_as_version_one(c), c.pop("threshold"), c.pop("arch")])
    old = load_bundle(copy)
    assert (old.threshold, old.arch, old.positive_label, old.positive_index()) == (0.5, "unknown", "fractured", 1)
    # ... but never without a positive label: which column is "fractured" would be a guess
    _edit_card(copy, lambda c: c.pop("positive_label"))
    with pytest.raises(BundleError, match="positive_label") as e:
        load_bundle(copy, verify=False)
    one_line_naming(e, copy / "model_card.json")


def test_predictions_in_label_order(saved, model, canvases):
    x = normalize(canvases, SPEC)
    p = saved.predict_proba(x)
    raw = model.predict(x, verbose=0)[:, 0]
    np.testing.assert_allclose(p[:, 1], raw, rtol=1e-5)
    np.testing.assert_allclose(p[:, 0], 1 - raw, rtol=1e-5)


def test_to_probabilities():
    raw = np.array([[0.8], [0.1]])
    np.testing.assert_allclose(to_probabilities(raw, "binary", ["a", "b"], "a"), [[0.8, 0.2], [0.1, 0.9]])
    np.testing.assert_allclose(to_probabilities(raw, "binary", ["a", "b"], "b"), [[0.2, 0.8], [0.9, 0.1]])
    soft = np.array([[0.2, 0.3, 0.5]])
    np.testing.assert_allclose(to_probabilities(soft, "multiclass", ["a", "b", "c"], None), soft)
    # Keras predicts float32; every reader gets float64, so a threshold compares the same way everywhere
    # (0.3 in float32 is above 0.3 in float64)
    for task, rows, labels, pos in (("multiclass", soft, ["a", "b", "c"], None), ("binary", raw, ["a", "b"], "a")):
        got = to_probabilities(rows.astype(np.float32), task, labels, pos)
        assert got.dtype == np.float64
    # a flat batch of sigmoid outputs (N,) is N rows, as (N, 1) is
    np.testing.assert_allclose(to_probabilities(np.array([0.8, 0.1]), "binary", ["a", "b"], "a"), [[0.8, 0.2], [0.1, 0.9]])


def test_a_damaged_model_file_is_a_bundle_error_when_loaded(copy):
    (copy / "model.h5").write_bytes(b"not an HDF5 file")
    with pytest.raises(BundleError, match="model.h5"):
        load_bundle(copy, verify=False).load_model()


# ---- what each refusal says: the line the user reads is part of the contract -----------------------
def _refusal(path: Path) -> tuple[str, str | None]:
    with pytest.raises(BundleError) as e:
        load_bundle(path)
    return e.value.message, e.value.hint


def test_each_refusal_says_what_is_wrong_and_what_to_do(copy, tmp_path):
    damaged = ("SHA-256 does not match the model card (file changed or damaged)", "restore the file or re-create the bundle")
    plot = copy / "plot.png"
    plot.write_bytes(b"\x89PNG changed")
    assert _refusal(copy) == damaged
    plot.unlink()
    assert _refusal(copy) == ("file listed in the model card is missing", None)
    shutil.copy(load_bundle(copy, verify=False).path / "model.h5", tmp_path / "outside.bin")
    _edit_card(copy, lambda c: c["files"].__setitem__("../outside.bin", c["files"].pop("plot.png")))
    assert _refusal(copy) == ("file listed in the model card lies outside the bundle", None)
    with pytest.raises(BundleError) as e:
        load_bundle(copy)
    assert e.value.path == str(copy / "../outside.bin")  # the file it is about, as the card names it
    _edit_card(copy, lambda c: c["files"].pop("model.h5"))
    assert _refusal(copy) == ("model card lists no model.h5", None)


def test_a_card_hash_refusal_names_the_contract(copy):
    _edit_card(copy, lambda c: c.__setitem__("bundle_sha256", "0" * 64))
    assert _refusal(copy) == (
        "bundle_sha256 does not match the files and the contract (threshold, labels, preprocessing...) in the model card",
        "restore the card or re-create the bundle",
    )


def test_not_a_bundle_says_where_bundles_come_from(tmp_path, copy):
    assert _refusal(tmp_path) == (
        "not a model bundle (no model_card.json)",
        "pass a directory written by `edge train` or `edge compress`",
    )
    (copy / "model_card.json").write_text("{not json")
    msg, hint = _refusal(copy)
    assert msg.startswith("model card is not valid JSON (Expecting property name") and hint is None
    (copy / "model_card.json").write_bytes(b"\xff\xfe")
    msg, _ = _refusal(copy)
    assert msg.startswith("model card is not valid JSON (") and "utf-8" in msg


def test_the_missing_default_says_so(tmp_path, monkeypatch):
    import edge.core.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "DEFAULT_BUNDLE", tmp_path / "default_bundle")
    monkeypatch.setattr(bundle_module, "TYPES_BUNDLE", tmp_path / "types_bundle")
    assert _refusal(tmp_path / "default_bundle") == ("the embedded 'default' bundle is missing from this installation", None)
    assert _refusal(tmp_path / "types_bundle") == ("the embedded 'types' bundle is missing from this installation", None)
