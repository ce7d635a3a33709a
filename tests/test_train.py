"""Training on real radiographs: every architecture, resume, imbalance modes, ImageNet weights offline."""

import csv
import json

import numpy as np
import pytest

from edge.core._tf import keras
from edge.core.bundle import load_bundle
from edge.core.errors import EdgeError
from train.models import IMAGENET_FILES, create_model
from train.trainer import TrainConfig, train


def _csv_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cfg(data, out, **kw):
    base = dict(
        data=str(data),
        out=str(out),
        arch="tiny",
        size=32,
        epochs=1,
        batch_size=8,
        max_per_class=6,
        augment="radiograph",
        calibration_samples=4,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("arch,size", [("custom", 64), ("custom448", 64), ("vgg16", 32), ("resnet50", 32), ("tiny", 32)])
def test_every_architecture_trains_and_writes_a_bundle(small_data, tmp_path, arch, size):
    b = train(_cfg(small_data, tmp_path / arch, arch=arch, size=size, max_per_class=4), progress=False)
    b2 = load_bundle(b.path)
    assert b2.arch == arch and b2.task == "binary" and b2.positive_label == "fractured"
    assert b2.spec.channels == (1 if arch in ("custom", "custom448", "tiny") else 3)
    assert set(b2.card.metrics) == {"val", "test"}
    assert 0.0 <= b2.threshold <= 1.0
    model = b2.load_model()
    assert model.input_shape[1:] == (size, size, b2.spec.channels)
    # flat graph, as quantization-aware training requires
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)


class _Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 2")


def test_resume_after_interruption_keeps_finished_epochs(small_data, tmp_path):
    cfg = _cfg(small_data, tmp_path / "run", epochs=4, patience=10)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, callbacks=[_Crash()])
    log = tmp_path / "run" / "log_all.csv"
    first = _csv_rows(log)
    assert [r["epoch"] for r in first] == ["0", "1"]
    assert not (tmp_path / "run" / "bundle").exists()  # no half-written bundle
    bundle = train(cfg, progress=False)  # same command again resumes
    rows = _csv_rows(log)
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]  # epochs 1-2 kept, 3-4 added, none repeated
    assert rows[:2] == first
    assert json.loads((tmp_path / "run" / "state.json").read_text())["phases_done"] == ["all"]
    assert bundle.card.training["epochs"] == 4


def test_finished_run_rewrites_its_bundle_with_fewer_calibration_canvases(small_data, tmp_path):
    """A bundle grown too large by its calibration canvases (each ~60 KB at 448 px) is shrunk without
    training again: the same command with --calibration-samples rewrites it from the finished run's weights."""
    cfg = _cfg(small_data, tmp_path / "run", epochs=2, patience=10, calibration_samples=6)
    first = train(cfg, progress=False)
    canvases, weights = first.calibration_canvases(), first.load_model().get_weights()
    log_before = (tmp_path / "run" / "log_all.csv").read_text()
    again = train(_cfg(small_data, tmp_path / "run", epochs=2, patience=10, calibration_samples=2), progress=False)
    assert (tmp_path / "run" / "log_all.csv").read_text() == log_before  # no epoch ran
    assert len(canvases) == 6 and len(again.calibration_canvases()) == 2
    assert all(any(np.array_equal(c, k) for k in canvases) for c in again.calibration_canvases())
    assert all(np.array_equal(x, y) for x, y in zip(weights, again.load_model().get_weights(), strict=True))
    assert again.card.threshold == first.card.threshold
    assert again.card.training["calibration_samples"] == 2
    with pytest.raises(EdgeError, match="other settings"):  # what shapes training still may not change
        train(_cfg(small_data, tmp_path / "run", epochs=2, patience=10, seed=4), progress=False)


class _LastWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.by_epoch = {}

    def on_epoch_end(self, epoch, logs=None):
        self.by_epoch[epoch] = [w.copy() for w in self.model.get_weights()]


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(small_data, tmp_path):
    """Same batches, augmentation, dropout masks and optimizer steps after a kill as without one."""
    cfg = _cfg(small_data, tmp_path / "resumed", epochs=4, patience=10)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, callbacks=[_Crash()])
    resumed = _LastWeights()
    train(cfg, progress=False, callbacks=[resumed])
    straight = _LastWeights()
    train(_cfg(small_data, tmp_path / "straight", epochs=4, patience=10), progress=False, callbacks=[straight])
    assert sorted(resumed.by_epoch) == [2, 3]
    for epoch in (2, 3):
        assert all(np.array_equal(a, b) for a, b in zip(resumed.by_epoch[epoch], straight.by_epoch[epoch], strict=True)), epoch
    logs = [_csv_rows(tmp_path / run / "log_all.csv") for run in ("resumed", "straight")]
    assert logs[0] == logs[1]  # every loss and metric, to the last digit


def test_every_epoch_sees_new_batches(small_data, tmp_path):
    from train.pipeline import BatchPlan

    plan = BatchPlan(np.arange(20) % 2, 8, seed=1, balanced=False)
    first = [list(next(plan.batches())[0]) for _ in range(3)]  # tf.data stops pulling after the last batch
    assert plan.epoch == 3 and first[0] != first[1] != first[2]


def test_resume_refuses_other_settings(small_data, tmp_path):
    train(_cfg(small_data, tmp_path / "r"), progress=False)
    with pytest.raises(EdgeError, match="other settings"):
        train(_cfg(small_data, tmp_path / "r", size=48), progress=False)


@pytest.mark.parametrize("mode", ["class_weight", "oversample", "focal", "none"])
def test_each_imbalance_mode(small_data, tmp_path, mode):
    b = train(_cfg(small_data, tmp_path / mode, imbalance=mode), progress=False)
    assert b.card.imbalance == mode
    assert (b.card.training["class_weights"] is not None) == (mode == "class_weight")


def test_imbalance_helpers():
    from train.imbalance import balanced_indices, class_weights

    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y, 2)
    assert w[0] == pytest.approx(100 / 180) and w[1] == pytest.approx(100 / 20)
    idx = balanced_indices(y, 4000, np.random.default_rng(0))
    assert 0.45 < y[idx].mean() < 0.55


def test_multiclass_fracture_types(bone_types, tmp_path):
    b = train(_cfg(bone_types, tmp_path / "types", max_per_class=5, val_fraction=0.4), progress=False)
    assert b.task == "multiclass" and len(b.labels) == 10 and b.positive_label is None
    assert b.load_model().output_shape == (None, 10)
    assert set(b.card.metrics["val"]["per_class"]) == set(b.labels)
    # calibrated by a temperature alone (no shift for softmax), fitted on val, no threshold policy
    c = b.card.calibration
    assert c["method"] == "temperature" and c["shift"] == 0.0 and c["temperature"] > 0
    assert c["after"]["val"]["nll"] <= c["before"]["val"]["nll"] + 1e-9
    assert b.card.contract.threshold_policy is None


def test_imagenet_weights_load_from_keras_cache_offline(tmp_path, monkeypatch):
    """--weights imagenet reads Keras' cache ($KERAS_HOME/models); here a file the test writes."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    fname = IMAGENET_FILES["vgg16"][0]
    ref = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    ref.set_weights([np.random.default_rng(i).normal(size=w.shape).astype("float32") for i, w in enumerate(ref.get_weights())])
    (tmp_path / "keras" / "models").mkdir(parents=True)
    ref.save_weights(str(tmp_path / "keras" / "models" / fname))

    def no_network(*a, **k):
        raise AssertionError("must not download when the cache has the file")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    model = create_model("vgg16", (32, 32, 3), 1, weights="imagenet")
    got = model.get_layer("block5_conv3").get_weights()[0]
    assert np.array_equal(got, ref.get_layer("block5_conv3").get_weights()[0])


def test_imagenet_weights_missing_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(EdgeError, match="not in Keras' cache") as e:
        create_model("resnet50", (32, 32, 3), 1, weights="imagenet")
    assert IMAGENET_FILES["resnet50"][0] in e.value.line()


def test_pretrained_two_phase_training_records_phases(small_data, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    ref = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    (tmp_path / "keras" / "models").mkdir(parents=True)
    ref.save_weights(str(tmp_path / "keras" / "models" / IMAGENET_FILES["vgg16"][0]))
    b = train(
        _cfg(small_data, tmp_path / "ft", arch="vgg16", weights="imagenet", warmup_epochs=1, max_per_class=4), progress=False
    )
    assert b.card.training["phases"] == ["warmup", "finetune"]
    # the frozen-backbone warm-up must not have changed the first conv layer; fine-tuning only the top blocks neither
    assert np.array_equal(
        b.load_model().get_layer("block1_conv1").get_weights()[0], ref.get_layer("block1_conv1").get_weights()[0]
    )


def test_oof_folds_calibrate_and_threshold_on_every_train_val_image(small_data, tmp_path):
    """--oof-folds: K fold models score train+val, the refit is the bundle's model, and the threshold
    rule counts every pooled positive (not val's alone)."""
    cfg = _cfg(small_data, tmp_path / "oof", epochs=2, max_per_class=8, oof_folds=2)
    b = train(cfg, progress=False)
    kf = json.loads((tmp_path / "oof" / "kfold.json").read_text())
    assert kf["folds"] == 2 and sum(kf["fold_sizes"]) == 32 and kf["epochs"]["all"] in (1, 2)
    policy = b.card.contract.threshold_policy
    assert policy["n_positives"] == 16  # 8 train + 8 val fractures; val alone has 8
    assert policy["chosen_on"].startswith("out-of-fold")
    assert set(b.card.metrics) == {"cv", "test"} and b.card.calibration["fitted_on"].startswith("out-of-fold")
    for k in range(2):  # each fold trained without early stopping or a best-epoch choice on its held-out images
        rows = _csv_rows(tmp_path / "oof" / f"fold{k}" / "log_all.csv")
        assert len(rows) == kf["epochs"]["all"]
        assert not (tmp_path / "oof" / f"fold{k}" / "best_all.weights.h5").exists()
        assert (tmp_path / "oof" / f"fold{k}" / "oof_logits.npy").is_file()
    # the refit saw train+val and nothing held out
    assert not (tmp_path / "oof" / "refit" / "best_all.weights.h5").exists()
    # a re-run reuses every finished fold and the refit: same bundle decision
    again = train(cfg, progress=False)
    assert again.threshold == b.threshold
