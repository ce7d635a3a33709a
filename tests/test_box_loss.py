"""Box-guided attention: the loss on hand-made maps, boxes on the canvas and through augmentation,
and a real training run with --boxes on radiographs."""

from __future__ import annotations

import csv

import albumentations as A
import numpy as np
import pytest

from edge.core._tf import keras, tf
from edge.core.boxes import grid_mask, read_boxes, to_canvas
from edge.core.errors import DataError, EdgeError
from edge.core.preprocess import PreprocessSpec, letterbox_u8
from train.augment import Augmenter, build_preset
from train.box_loss import cam_box_loss, class_cam, ramp


def _loss(cam: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return cam_box_loss(tf.constant(cam[None], tf.float32), tf.constant(mask[None], tf.float32)).numpy()


def test_all_mass_inside_scores_zero_all_outside_one():
    mask = np.zeros((4, 4), np.float32)
    mask[1:3, 1:3] = 1
    inside = np.where(mask > 0, 2.0, -5.0)  # negative evidence outside is not mass (ReLU)
    outside = np.where(mask > 0, -1.0, 0.5)
    assert _loss(inside, mask)[0] == pytest.approx(0.0, abs=1e-6)
    assert _loss(outside, mask)[0] == pytest.approx(1.0, abs=1e-6)


def test_partial_mass_is_the_share_outside():
    mask = np.zeros((3, 3), np.float32)
    mask[0, 0] = 1
    cam = np.array([[3.0, 1.0, 0.0], [0.0, -4.0, 0.0], [0.0, 0.0, 2.0]])
    # positive mass 3 + 1 + 2 = 6, of which 3 is inside: 1 - 3/6
    assert _loss(cam, mask)[0] == pytest.approx(0.5, abs=1e-6)


def test_no_positive_evidence_scores_one():
    mask = np.ones((2, 2), np.float32)
    assert _loss(-np.ones((2, 2)), mask)[0] == pytest.approx(1.0)


def test_class_cam_is_features_times_the_dense_column():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2, 3, 3, 5)).astype(np.float32)
    k = rng.normal(size=(5, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[2, 0]]
    got = class_cam(tf.constant(f), tf.constant(k), tf.constant(y)).numpy()
    want = np.stack([f[0] @ k[:, 2], f[1] @ k[:, 0]])
    assert np.allclose(got, want, atol=1e-5)
    binary = class_cam(tf.constant(f), tf.constant(k[:, :1]), tf.constant(y[:, :1])).numpy()
    assert np.allclose(binary, f @ k[:, 0], atol=1e-5)


def test_cam_gap_identity_the_map_averages_to_the_logit():
    """Why the CAM is the right map: its mean is the dense layer's pre-bias score after GAP."""
    rng = np.random.default_rng(1)
    f = rng.random(size=(1, 4, 4, 6)).astype(np.float32)
    k = rng.normal(size=(6, 1)).astype(np.float32)
    cam = class_cam(tf.constant(f), tf.constant(k), tf.zeros((1, 1))).numpy()
    assert cam.mean() == pytest.approx(float((f.mean(axis=(1, 2)) @ k)[0, 0]), rel=1e-5)


def test_ramp_is_linear_then_flat():
    got = [float(ramp(0.4, tf.constant(s, tf.int64), 10)) for s in (0, 4, 9, 50)]
    assert got == pytest.approx([0.04, 0.2, 0.4, 0.4])


def test_grid_mask_marks_every_cell_a_box_overlaps():
    # a box from x 0.30..0.55, y 0.0..0.1 on a 4x4 grid: columns 1 (0.25..0.5) and 2 (0.5..0.75), row 0
    m = grid_mask(np.array([[0.425, 0.05, 0.25, 0.1]]), (4, 4))
    want = np.zeros((4, 4), np.float32)
    want[0, 1:3] = 1
    assert np.array_equal(m, want)
    assert not grid_mask(np.zeros((0, 4)), (4, 4)).any()


def test_boxes_follow_the_letterbox():
    # a 100x50 (h x w) image on a 64x64 canvas: scaled to 64x32, 16 px padding left and right
    box = (0.5, 0.25, 1.0, 0.5)  # the whole width, the top half
    got = to_canvas([box], (100, 50), (64, 64))
    assert np.allclose(got, [[0.5, 0.25, 32 / 64, 0.5]])
    # the box lands on the image pixels: the canvas is bright exactly where the box says
    img = np.zeros((100, 50), np.uint8)
    img[:50] = 255
    canvas = letterbox_u8(img, PreprocessSpec(size=(64, 64)))
    xc, yc, bw, bh = got[0] * 64
    assert canvas[int(yc - bh / 2) : int(yc + bh / 2), int(xc - bw / 2) : int(xc + bw / 2)].min() == 255
    assert canvas[40:, :].max() == 0 and canvas[:, :15].max() == 0


def test_boxes_move_with_a_flip():
    aug = Augmenter(A.Compose([A.HorizontalFlip(p=1.0)]))
    canvas = np.zeros((1, 32, 32), np.uint8)
    canvas[0, 4:8, 2:10] = 200  # the box's content, left side
    box = np.array([[6 / 32, 6 / 32, 8 / 32, 4 / 32]])
    imgs, boxes = aug.with_boxes(canvas, [box], seed=0)
    assert np.allclose(boxes[0], [[1 - 6 / 32, 6 / 32, 8 / 32, 4 / 32]], atol=1e-6)
    xc, yc, bw, bh = boxes[0][0] * 32
    assert imgs[0, int(yc - bh / 2) : int(yc + bh / 2), int(xc - bw / 2) : int(xc + bw / 2)].min() == 200
    # on a 4x4 grid of 8 px cells: x 2..10 px touches columns 0-1, flipped (x 22..30) columns 2-3; y 4..8 is row 0
    before, after = np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)
    before[0, :2], after[0, 2:] = 1, 1
    assert np.array_equal(grid_mask(box, (4, 4)), before) and np.array_equal(grid_mask(boxes[0], (4, 4)), after)


def test_boxes_stay_on_the_content_through_the_radiograph_preset():
    """Rotation, shift-scale and flips move boxes where the pixels go (the content of the box stays
    inside the moved box, up to a pixel of interpolation)."""
    aug = Augmenter(build_preset("radiograph"))
    canvas = np.zeros((8, 64, 64), np.uint8)
    canvas[:, 20:30, 10:22] = 255
    box = np.array([[16 / 64, 25 / 64, 12 / 64, 10 / 64]])
    imgs, boxes = aug.with_boxes(canvas, [box] * 8, seed=5)
    moved = 0
    for img, b in zip(imgs, boxes, strict=True):
        if not len(b):
            continue
        xc, yc, bw, bh = b[0] * 64
        bright = img > 128
        inside = np.zeros_like(bright)
        inside[max(0, int(yc - bh / 2) - 1) : int(yc + bh / 2) + 2, max(0, int(xc - bw / 2) - 1) : int(xc + bw / 2) + 2] = True
        assert bright.sum() > 0 and (bright & ~inside).sum() <= 2
        moved += not np.allclose(b, box)
    assert moved >= 4  # the preset did move most of them


def test_read_boxes_refuses_values_outside_unit_range(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_text("image_id,x_center,y_center,width,height\na.jpg,0.5,1.5,0.1,0.1\n")
    with pytest.raises(DataError, match="YOLO-normalised"):
        read_boxes(bad)


def _boxed_images(boxes_csv, root) -> set[str]:
    names = {p.name for p in root.rglob("*.jpg")}
    with open(boxes_csv, newline="") as f:
        return {r["image_id"] for r in csv.DictReader(f)} & names


def test_edge_train_with_boxes_on_the_bundled_radiographs(bundled_data, tmp_path):
    """`edge train --boxes` end to end: the loss is logged per epoch and ramps to its weight, the card
    records the setting, and the bundle is the plain graph."""
    from click.testing import CliRunner

    from edge.app.cli import main
    from edge.core.bundle import load_bundle

    data, boxes = bundled_data / "fracatlas", bundled_data / "fracatlas" / "boxes.csv"
    assert _boxed_images(boxes, data / "train")  # the run really has boxed images
    args = ["train", "--data", data, "--arch", "tiny", "--size", 64, "--epochs", 2, "--batch-size", 8, "--skip-bad"]
    args += ["--boxes", boxes, "--box-weight", 0.4, "--box-ramp-epochs", 2, "--seed", 2, "-o", tmp_path / "run"]
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    with open(tmp_path / "run" / "log_all.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and "val_box_loss" not in rows[0]
    # a share of the CAM's mass: strictly between 0 and 1 on real maps; ramped to the full weight
    assert all(0.0 < float(r["box_loss"]) < 1.0 for r in rows)
    # linear over two epochs: half the weight after the first, all of it after the second
    assert [float(r["box_weight"]) for r in rows] == pytest.approx([0.2, 0.4])
    bundle = load_bundle(tmp_path / "run" / "bundle")
    training = bundle.card.training
    g = training["box_guidance"]
    assert training["boxes"] == str(boxes) and g["weight"] == 0.4 and g["ramp_epochs"] == 2
    assert g["train_images_with_boxes"] == len(_boxed_images(boxes, data / "train"))
    model = bundle.load_model()
    assert model.output_shape == (None, 1) and len(model.outputs) == 1


def test_box_loss_moves_the_map_into_the_boxes(small_data, fracatlas):
    """Same seed, same batches, box weight 0 vs 1: with the loss the CAM puts more of its positive
    mass in the boxes of real radiographs (the training step does what the loss says)."""
    from edge.core.data import load_canvases
    from edge.core.preprocess import normalize
    from train.box_loss import BoxGuided, canvas_boxes, feature_grid
    from train.models import create_model
    from train.pipeline import BatchPlan, train_dataset

    table = read_boxes(fracatlas / "boxes.csv")
    spec = PreprocessSpec.for_arch("tiny", 64)
    paths = sorted(p for p in (small_data / "train" / "fractured").glob("*.jpg") if p.name in table)
    paths += sorted((small_data / "train" / "not_fractured").glob("*.jpg"))[: len(paths)]
    canv, kept, _ = load_canvases(paths, spec, skip_bad=True)
    paths = [paths[i] for i in kept]
    y = np.array([p.parent.name == "fractured" for p in paths], np.float32)[:, None]
    boxes = canvas_boxes(paths, table, spec.size)
    share = {}
    for weight in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        model = create_model("tiny", spec.input_shape, 1, dropout=0.0)
        grid = feature_grid(model, "features_relu")
        fm = BoxGuided(model, "features_relu", weight, ramp_steps=1)
        fm.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
        ds = train_dataset(canv, y, spec, BatchPlan(y[:, 0], 8, 0, balanced=False), Augmenter(None), None, boxes, grid)
        fm.fit(ds, epochs=8, verbose=0)
        feats = keras.Model(model.input, model.get_layer("features_relu").output)(normalize(canv, spec), training=False)
        cam = class_cam(feats, model.get_layer("head_out").kernel, tf.constant(y))
        masks = np.stack([grid_mask(b, grid) for b in boxes])
        has = masks.reshape(len(masks), -1).max(axis=1) > 0
        share[weight] = float(np.mean(1 - cam_box_loss(cam, tf.constant(masks)).numpy()[has]))
    # seen here: 0.0002 without, 0.019 with (a uniform map would score the box area, 0.016)
    assert share[1.0] > 2 * share[0.0] + 0.005, share


def test_boxes_need_a_cam_head_and_boxed_images(small_data, fracatlas, tmp_path):
    from train.trainer import TrainConfig, train

    none_match = tmp_path / "b.csv"
    none_match.write_text("image_id,x_center,y_center,width,height\nnot_here.jpg,0.5,0.5,0.1,0.1\n")
    base = dict(data=str(small_data), size=32, epochs=1, batch_size=8, calibration_samples=4)
    with pytest.raises(DataError, match="none of the training images has a box"):
        train(TrainConfig(out=str(tmp_path / "r1"), arch="tiny", boxes=str(none_match), **base), progress=False)
    with pytest.raises(EdgeError, match="feed the global pooling"):  # VGG16: a max-pool sits between
        train(TrainConfig(out=str(tmp_path / "r2"), arch="vgg16", boxes=str(fracatlas / "boxes.csv"), **base), progress=False)
