"""The model card as a contract: every file and every decision field is covered by the bundle hash,
old (version 1) bundles still load, and a model file is read as weights only."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge.core import card as card_mod
from edge.core.bundle import CARD, DEFAULT_BUNDLE, MODEL_FILE, load_bundle, migrate_bundle, save_bundle, update_card
from edge.core.card import CONTRACT_KEYS, Contract, ModelCard, files_hash_v1
from edge.core.errors import BundleError
from edge.core.preprocess import PreprocessSpec


@pytest.fixture()
def default_copy(tmp_path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, dest)
    return dest


def _edit_card(path: Path, fn) -> None:
    card = json.loads((path / CARD).read_text())
    fn(card)
    (path / CARD).write_text(json.dumps(card, indent=2))


def test_default_bundle_is_version_2_and_loads_weights_only():
    b = load_bundle()
    assert b.card.version == 2 and b.sha256 == b.card.content_hash()
    assert b.card.contract.output == {"units": 1, "activation": "sigmoid"}
    assert b.load_model().count_params() == b.card.params


def test_every_file_is_covered(default_copy):
    files = json.loads((default_copy / CARD).read_text())["files"]
    assert set(files) == {"model.h5", "calibration.npz", "curves.png", "roc.png"}
    for name in files:
        f = default_copy / name
        original = f.read_bytes()
        f.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one flipped bit at the end
        with pytest.raises(BundleError, match="SHA-256 does not match"):
            load_bundle(default_copy)
        f.unlink()
        with pytest.raises(BundleError, match="missing"):
            load_bundle(default_copy)
        f.write_bytes(original)
    assert load_bundle(default_copy).sha256 == load_bundle().sha256


# one edit per contract field, each leaving a card that is valid on its own (so only the hash can catch it)
CONTRACT_EDITS = {
    "arch": lambda c: c.update(arch="tiny"),
    "task": lambda c: c.update(task="multiclass", positive_label=None, output={"units": 2, "activation": "softmax"}),
    "labels": lambda c: c.update(labels=["fractured", "healthy"]),
    "positive_label": lambda c: c.update(positive_label="not_fractured"),
    "threshold": lambda c: c.update(threshold=0.94),
    "threshold_policy": lambda c: c.update(threshold_policy={"target_sensitivity": 0.5, "chosen_on": "val"}),
    "preprocess": lambda c: c["preprocess"].update(std=[128.0]),
    "input": lambda c: c["input"].update(dtype="float32", shape=[224, 224, 1], extra=1),
    "output": lambda c: c["output"].update(units=1, activation="sigmoid", note="x"),
    "qat": lambda c: c.update(qat=True),
}


def test_contract_keys_all_have_a_tamper_case():
    assert set(CONTRACT_EDITS) == set(CONTRACT_KEYS)


@pytest.mark.parametrize("field", sorted(CONTRACT_EDITS))
def test_editing_a_contract_field_is_refused(default_copy, field):
    _edit_card(default_copy, CONTRACT_EDITS[field])
    with pytest.raises(BundleError) as e:
        load_bundle(default_copy)
    assert "\n" not in str(e.value) and str(default_copy / CARD) in str(e.value)


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["preprocess"].update(mean=[1.0]),
        lambda c: c["preprocess"].update(size=[225, 224]),
        lambda c: c["preprocess"].update(pad_value=9),
        lambda c: c.update(threshold=0.2400001),
        lambda c: c.update(bundle_sha256="0" * 64),
        lambda c: c["files"].update({"curves.png": "0" * 64}),
        lambda c: c["files"].pop("curves.png"),
        lambda c: c.update(version=1),  # a downgrade checks the old way, and the old hash is not this one
    ],
    ids=["mean", "size", "pad", "threshold-epsilon", "hash", "file-hash", "file-dropped", "downgrade"],
)
def test_other_edits_are_refused(default_copy, edit):
    _edit_card(default_copy, edit)
    with pytest.raises(BundleError):
        load_bundle(default_copy)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda c: c.update(positive_label="broken"), "positive_label"),
        (lambda c: c.update(threshold="high"), "threshold"),
        (lambda c: c.update(threshold=1.5), "threshold"),
        (lambda c: c.pop("qat"), "lacks qat"),
        (lambda c: c.update(version=9), "newer"),
        (lambda c: c["preprocess"].update(std=[0.0]), "preprocess"),
    ],
)
def test_inconsistent_cards_give_one_line(default_copy, edit, words):
    _edit_card(default_copy, edit)
    with pytest.raises(BundleError, match=words) as e:
        load_bundle(default_copy)
    assert "\n" not in str(e.value)


def test_cli_refuses_a_raised_threshold(default_copy, fracatlas):
    from edge.app.cli import main

    _edit_card(default_copy, CONTRACT_EDITS["threshold"])
    image = sorted((fracatlas / "test" / "fractured").glob("*.jpg"))[0]
    r = CliRunner().invoke(main, ["predict", str(default_copy), str(image)])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "bundle_sha256 does not match" in r.output and len(r.output.strip().splitlines()) == 1


def test_record_fields_update_but_contract_fields_do_not(default_copy):
    b = load_bundle(default_copy)
    b2 = update_card(b, metrics={"note": "re-evaluated"}, notes="checked by hand")
    again = load_bundle(default_copy)
    assert again.sha256 == b.sha256 and again.card.metrics == {"note": "re-evaluated"}
    assert again.card.extra["notes"] == "checked by hand" and b2.card.metrics == again.card.metrics
    for key in ("threshold", "labels", "preprocess", "bundle_sha256", "files"):
        with pytest.raises(BundleError, match="contract or hashes"):
            update_card(again, **{key: None})


def test_version_1_card_loads_and_migrates(default_copy):
    def to_v1(c):
        for k in ("input", "output", "qat"):
            c.pop(k)
        c["version"] = 1
        c["bundle_sha256"] = files_hash_v1(c["files"])

    h5 = (default_copy / MODEL_FILE).read_bytes()
    _edit_card(default_copy, to_v1)
    old = load_bundle(default_copy)
    assert old.card.version == 1 and old.threshold == load_bundle().threshold
    assert old.card.contract == load_bundle().card.contract  # migrated in memory to the same contract
    new = migrate_bundle(default_copy)
    assert new.card.version == 2 and new.sha256 == load_bundle().sha256
    assert (default_copy / MODEL_FILE).read_bytes() == h5


def _tiny_card(spec: PreprocessSpec, arch: str = "tiny") -> ModelCard:
    return ModelCard(Contract.create(arch, "binary", ["fractured", "not_fractured"], "fractured", 0.5, spec), model_id="t")


def test_a_model_file_with_a_lambda_layer_is_refused_without_running_it(tmp_path):
    from edge.core._tf import keras
    from edge.core.architectures import build_tiny

    marker = tmp_path / "pwned"
    spec = PreprocessSpec.for_arch("tiny", 32)
    base = build_tiny(spec.input_shape, 1)

    def payload(x, path=str(marker)):
        Path(path).write_text("ran")  # what a hostile model file would do at load time
        return x

    x = keras.layers.Lambda(payload, name="features_relu_hook")(base.get_layer("features_relu").output)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    evil = keras.Model(base.input, keras.layers.Dense(1, activation="sigmoid", name="head_out")(x))
    b = save_bundle(tmp_path / "evil", evil, _tiny_card(spec))  # hashes are all correct
    marker.unlink()  # building the graph above ran the function once
    with pytest.raises(BundleError, match="features_relu_hook.*Lambda"):
        b.load_model()
    assert not marker.exists()


def test_weights_of_another_architecture_are_refused(tmp_path):
    from edge.core.architectures import build_custom

    spec = PreprocessSpec.for_arch("tiny", 32)
    b = save_bundle(tmp_path / "b", build_custom(spec.input_shape, 1), _tiny_card(spec))
    with pytest.raises(BundleError, match="does not match the card's architecture 'tiny'"):
        b.load_model()


def test_weights_only_load_reproduces_the_saved_model(tmp_path):
    from edge.core.architectures import build_tiny

    spec = PreprocessSpec.for_arch("tiny", 32)
    model = build_tiny(spec.input_shape, 1)
    x = np.random.default_rng(0).random((3, *spec.input_shape)).astype(np.float32)
    b = save_bundle(tmp_path / "b", model, _tiny_card(spec))
    np.testing.assert_array_equal(load_bundle(b.path).load_model().predict(x, verbose=0), model.predict(x, verbose=0))


def _rehash(card: dict) -> None:
    """What an attacker who rewrites hashes does: a card consistent with its own (edited) content."""
    from edge.core.card import ModelCard as MC

    card["bundle_sha256"] = MC.from_dict({**card, "bundle_sha256": ""}, "x").content_hash()


def test_listed_files_must_lie_inside_the_bundle(default_copy, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of any bundle")
    from edge.core.fsutil import sha256_file

    _edit_card(default_copy, lambda c: (c["files"].update({"../secret.txt": sha256_file(secret)}), _rehash(c)))
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(default_copy)


def test_an_unlisted_calibration_file_is_not_used(default_copy):
    assert load_bundle(default_copy).calibration_canvases() is not None
    _edit_card(default_copy, lambda c: (c["files"].pop("calibration.npz"), _rehash(c)))
    b = load_bundle(default_copy)  # consistent card, file still on disk
    assert (default_copy / "calibration.npz").is_file() and b.calibration_canvases() is None


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda c: c.update(format="other/format"), "not a fracture-edge bundle card"),
        (lambda c: c.update(version="2"), "positive integer"),
        (lambda c: c.pop("files"), "lacks 'files'"),
        (lambda c: c["files"].pop("model.h5"), "lists no model.h5"),
    ],
)
def test_malformed_cards(default_copy, edit, words):
    _edit_card(default_copy, edit)
    with pytest.raises(BundleError, match=words):
        load_bundle(default_copy)


# ---- the card's functions one at a time, against hand-written cards (no model, no TensorFlow) ---------
PRE = {"size": [16, 16], "channels": 1, "pad_value": 0, "mean": [0.0], "std": [255.0], "resize": "letterbox",
       "interpolation": "bilinear"}  # fmt: skip
CONTRACT = {
    "arch": "tiny",
    "task": "binary",
    "labels": ["not_fractured", "fractured"],
    "positive_label": "fractured",
    "threshold": 0.25,
    "threshold_policy": None,
    "preprocess": PRE,
    "input": {"shape": [16, 16, 1], "dtype": "float32"},
    "output": {"units": 1, "activation": "sigmoid"},
    "qat": False,
}
FILES = {"model.h5": "a" * 64, "calibration.npz": "b" * 64}


def v2_card(**changes) -> dict:
    d = {"format": "fracture-edge/bundle", "version": 2, "model_id": "m", **CONTRACT, "files": dict(FILES), "bundle_sha256": ""}
    d.update(changes)
    return d


def refusal(d, where="card.json") -> str:
    with pytest.raises(BundleError) as e:
        ModelCard.from_dict(d, where)
    assert e.value.path == where
    return e.value.message


def test_the_content_hash_is_sha256_of_the_sorted_files_and_the_contract():
    body = '{"contract":' + json.dumps(CONTRACT, sort_keys=True, separators=(",", ":"))
    body += ',"files":{"calibration.npz":"' + "b" * 64 + '","model.h5":"' + "a" * 64 + '"}}'
    card = ModelCard.from_dict(v2_card(), "c")
    assert card.content_hash() == hashlib.sha256(body.encode()).hexdigest()
    assert card_mod.content_hash(dict(reversed(FILES.items())), card.contract) == card.content_hash()
    assert card_mod.expected_hash(card) == card.content_hash()
    v1 = ModelCard.from_dict(v2_card(version=1), "c")
    want_v1 = hashlib.sha256(('{"calibration.npz": "' + "b" * 64 + '", "model.h5": "' + "a" * 64 + '"}').encode()).hexdigest()
    assert card_mod.files_hash_v1(FILES) == want_v1 == card_mod.expected_hash(v1)
    assert card.contract.canonical() == json.dumps(CONTRACT, sort_keys=True, separators=(",", ":")).encode()


def test_migrate_makes_a_version_2_card_hashed_over_the_contract():
    v1 = ModelCard.from_dict(v2_card(version=1, bundle_sha256="x"), "c")
    new = card_mod.migrate(v1)
    assert new.version == 2 and new.bundle_sha256 == new.content_hash() and new.files == FILES
    assert v1.version == 1 and v1.bundle_sha256 == "x"  # the old card is not changed in place


def test_a_version_1_card_gets_the_default_threshold_and_its_qat_from_compression():
    d = v2_card(version=1, compression={"method": "qat", "qat": True})
    for k in ("threshold", "input", "output", "qat", "arch", "threshold_policy"):
        d.pop(k)
    c = ModelCard.from_dict(d, "c")
    assert (c.threshold, c.qat, c.arch, c.version) == (0.5, True, "unknown", 1)
    assert type(c.threshold) is float and c.contract.threshold_policy is None
    assert c.compression == {"method": "qat"} and c.to_dict()["compression"] == {"method": "qat", "qat": True}
    assert c.contract.input == {"shape": [16, 16, 1], "dtype": "float32"}
    assert ModelCard.from_dict({**d, "threshold": "0.75", "compression": None}, "c").threshold == 0.75
    assert ModelCard.from_dict({**d, "compression": None}, "c").qat is False


def test_contract_create_for_both_tasks():
    spec = PreprocessSpec.from_dict(PRE)
    b = Contract.create("tiny", "binary", ["no", "yes"], "yes", 1, spec)
    assert b.to_dict() == {**CONTRACT, "labels": ["no", "yes"], "positive_label": "yes", "threshold": 1.0}
    assert type(b.threshold) is float and b.labels == ("no", "yes")
    m = Contract.create("tiny", "multiclass", ["a", "b", "c"], "a", 0.5, spec, {"target": 0.9}, qat=True)
    assert (m.positive_label, m.output, m.threshold_policy, m.qat) == (
        None,
        {"units": 3, "activation": "softmax"},
        {"target": 0.9},
        True,
    )


def test_what_from_dict_reads_and_keeps():
    d = v2_card(model_id="", gradcam_layer="conv", params=12, created="now", training={"e": 1}, imbalance="w",
                data={"n": 3}, metrics=None, compression={"qat": False, "k": 1}, my_field=[1])  # fmt: skip
    c = ModelCard.from_dict(d, "c")
    assert (c.model_id, c.gradcam_layer, c.params, c.created, c.training, c.imbalance, c.data) == (
        "model", "conv", 12, "now", {"e": 1}, "w", {"n": 3},
    )  # fmt: skip
    assert c.metrics == {} and c.compression == {"k": 1} and c.extra == {"my_field": [1]} and c.version == 2
    out = c.to_dict()
    assert out["my_field"] == [1] and out["files"] == FILES and out["format"] == "fracture-edge/bundle"
    assert list(out)[-2:] == ["files", "bundle_sha256"] and out["compression"] == {"k": 1, "qat": False}
    assert {k: out[k] for k in CONTRACT} == CONTRACT
    again = ModelCard.from_dict(out, "c")
    assert again == c


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"format": "other"}, "not a fracture-edge bundle card (format='other')"),
        ({"version": 0}, "model card version must be a positive integer, not 0"),
        ({"version": "2"}, "model card version must be a positive integer, not '2'"),
        ({"version": 3}, "bundle version 3 is newer than this toolkit understands"),
        ({"preprocess": "x"}, "model card: preprocess is not a valid spec ("),
        ({"labels": 5}, "model card: malformed contract field ("),
        ({"task": "regression"}, "model card: task must be one of binary, multiclass, not 'regression'"),
        ({"labels": ["a"], "positive_label": "a"}, "model card: labels must be two or more distinct names, not ['a']"),
        ({"labels": ["a", "a"], "positive_label": "a"}, "model card: labels must be two or more distinct names"),
        ({"labels": ["a", ""], "positive_label": "a"}, "model card: labels must be two or more distinct names"),
        ({"positive_label": "elbow"}, "model card: positive_label 'elbow' is not one of the two labels"),
        ({"labels": ["a", "b", "c"], "positive_label": "a"}, "model card: positive_label 'a' is not one of the two labels"),
        ({"threshold": 1.0000001}, "model card: threshold must be a probability in 0..1, not 1.0000001"),
        ({"threshold": -1e-9}, "model card: threshold must be a probability in 0..1"),
        ({"threshold": float("nan")}, "model card: threshold must be a probability in 0..1"),
        ({"threshold": True}, "model card: threshold must be a probability in 0..1, not True"),
        ({"threshold": "0.5"}, "model card: threshold must be a probability in 0..1, not '0.5'"),
        ({"input": {"shape": [16, 16, 3], "dtype": "float32"}}, "model card: input {'shape': [16, 16, 3]"),
        (
            {"input": {"shape": [16, 16, 1], "dtype": "float16"}},
            "model card: input {'shape': [16, 16, 1], 'dtype': 'float16'} does not match the preprocessing's [16, 16, 1] float32",
        ),
        ({"input": {"dtype": "float32"}}, "model card: input {'dtype': 'float32'} does not match the preprocessing's"),
        ({"output": {"units": 2, "activation": "sigmoid"}}, "model card: output {'units': 2, 'activation': 'sigmoid'} does not"),
    ],
)
def test_each_bad_card_has_its_sentence(changes, words):
    assert refusal(v2_card(**changes)).startswith(words)


@pytest.mark.parametrize("key", ["labels", "task", "preprocess", "files", "bundle_sha256"])
def test_a_card_lacking_a_required_key(key):
    d = v2_card()
    d.pop(key)
    assert refusal(d) == f"model card lacks '{key}'"


def test_a_version_2_card_lacking_contract_keys_names_them_all():
    d = v2_card()
    d.pop("qat"), d.pop("arch")
    assert refusal(d) == "model card lacks arch, qat"
    assert refusal([1]) == "not a fracture-edge bundle card (format=None)"
    with pytest.raises(BundleError) as e:
        ModelCard.from_dict(v2_card(version=3), "c")
    assert e.value.hint == "upgrade fracture-edge"


def test_thresholds_at_the_ends_are_valid():
    for t in (0.0, 1.0, 0, 1):
        c = ModelCard.from_dict(v2_card(threshold=t), "c")
        assert c.threshold == t and type(c.threshold) is float
    multi = v2_card(task="multiclass", labels=["a", "b", "c"], positive_label=None, output={"units": 3, "activation": "softmax"})
    assert ModelCard.from_dict(multi, "c").task == "multiclass"


def test_with_record_replaces_record_fields_and_keeps_unknown_ones():
    c = ModelCard.from_dict(v2_card(), "c")
    n = c.with_record(metrics={"auroc": 0.5}, notes="x")
    assert n.metrics == {"auroc": 0.5} and n.extra == {"notes": "x"} and c.metrics == {} and c.extra == {}
    assert n.contract == c.contract and n.files == c.files
    with pytest.raises(BundleError) as e:
        c.with_record(threshold=0.3, files={}, contract=None, notes="y")
    assert e.value.message == "threshold, files, contract belong to the model's contract or hashes and cannot be updated in place"
    assert e.value.hint == "re-create the bundle (train, compress) to change them" and e.value.path is None


def test_the_calibration_record_round_trips_and_is_absent_when_there_is_none():
    record = {"method": "platt", "before": {"val": {"ece": 0.19}}, "after": {"val": {"ece": 0.03}}}
    card = ModelCard.from_dict(v2_card(calibration=record), "c")
    assert card.calibration == record and "calibration" not in card.extra
    assert card.to_dict()["calibration"] == record
    assert ModelCard.from_dict(card.to_dict(), "c").calibration == record
    plain = ModelCard.from_dict(v2_card(), "c")
    assert plain.calibration is None and "calibration" not in plain.to_dict()  # absent, not null
    assert ModelCard.from_dict(v2_card(calibration="T=1.3"), "c").calibration is None  # not a record: dropped
