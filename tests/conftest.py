"""Shared fixtures: small subsets of the real radiographs and quickly trained real bundles."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED = Path(__file__).resolve().parent / "data"  # ~3 MB of real radiographs shipped with the repo (data/ATTRIBUTION.md)


FULL_DATA = pytest.StashKey["Path | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--data",
        choices=("auto", "bundled", "full"),
        default="auto",
        help="radiographs to test on: the full data if found (auto), always the bundled subset in tests/data "
        "(what a bare clone runs), or the full data and fail if it is missing",
    )


def _full_data_root(mode: str) -> Path | None:
    """The full data: EDGE_DATA_DIR if set (it must then hold fracatlas/), else ../shared/data if present."""
    if mode == "bundled":
        return None
    env = os.environ.get("EDGE_DATA_DIR")
    if env and not (Path(env) / "fracatlas").is_dir():
        raise pytest.UsageError(f"EDGE_DATA_DIR={env} holds no fracatlas/ folder")
    found = Path(env) if env else REPO.parent / "shared" / "data"
    if (found / "fracatlas").is_dir():
        return found.resolve()
    if mode == "full":
        raise pytest.UsageError("--data full: set EDGE_DATA_DIR to the folder holding fracatlas/ (or put it at ../shared/data)")
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FULL_DATA] = _full_data_root(config.getoption("--data"))


def pytest_report_header(config: pytest.Config) -> str:
    full = config.stash[FULL_DATA]
    return f"data: {full} (full)" if full else f"data: {BUNDLED} (bundled subset; full_data tests skipped)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _fastest_first_under_mutmut(items)
    if config.stash[FULL_DATA]:
        return
    skip = pytest.mark.skip(reason="needs the full FracAtlas set: set EDGE_DATA_DIR (or put it at ../shared/data)")
    for item in items:
        if "full_data" in item.keywords:
            item.add_marker(skip)


def _fastest_first_under_mutmut(items: list[pytest.Item]) -> None:
    """Under mutmut (a mutant active, its stats file in the cwd), run the tests it timed fastest first:
    with -x a mutant killed by a unit test never waits for the end-to-end tests that build models."""
    stats = Path("mutmut-stats.json")
    if not os.environ.get("MUTANT_UNDER_TEST") or not stats.is_file():
        return
    import json

    took = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda it: took.get(it.nodeid, float("inf")))


@pytest.fixture(scope="session")
def data_root(pytestconfig: pytest.Config) -> Path:
    """The full data when present, else the bundled subset (same layout, fewer images)."""
    return pytestconfig.stash[FULL_DATA] or BUNDLED


@pytest.fixture(scope="session")
def bundled_data() -> Path:
    """Always the bundled subset, whose contents (truncated files, near-duplicates) are known exactly."""
    return BUNDLED


@pytest.fixture(scope="session")
def fracatlas(data_root: Path) -> Path:
    return data_root / "fracatlas"


@pytest.fixture(scope="session")
def bone_types(data_root: Path) -> Path:
    return data_root / "bone_break_types"


def _good_images(folder: Path, n: int) -> list[Path]:
    from edge.core.errors import ImageReadError
    from edge.core.imageio import read_image

    out = []
    for p in sorted(folder.glob("*.jpg")):
        try:
            read_image(p)
        except ImageReadError:
            continue
        out.append(p)
        if len(out) == n:
            break
    return out


@pytest.fixture(scope="session")
def small_data(tmp_path_factory, fracatlas: Path) -> Path:
    """root/<split>/<class>/ with a few readable real FracAtlas radiographs each."""
    root = tmp_path_factory.mktemp("small_data")
    for split, n in (("train", 16), ("val", 8), ("test", 8)):
        for cls in ("fractured", "not_fractured"):
            dest = root / split / cls
            dest.mkdir(parents=True)
            for p in _good_images(fracatlas / split / cls, n):
                shutil.copy(p, dest / p.name)
    return root


def _train(tmp_path_factory, data: Path, arch: str, size: int, epochs: int, name: str):
    from train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp(name)
    return train(
        TrainConfig(
            data=str(data),
            out=str(out),
            arch=arch,
            size=size,
            epochs=epochs,
            batch_size=8,
            augment="light",
            calibration_samples=16,
            seed=1,
        ),
        progress=False,
    )


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, small_data: Path):
    """A real (if weak) bundle: the 'tiny' test architecture at 64 px, trained 2 epochs on real images."""
    return _train(tmp_path_factory, small_data, "tiny", 64, 2, "tiny_run")


@pytest.fixture(scope="session")
def custom_bundle_small(tmp_path_factory, small_data: Path):
    """The real custom architecture at 64 px, one epoch."""
    return _train(tmp_path_factory, small_data, "custom", 64, 1, "custom_run")


# --- conversion/validation fixtures (built once per run; helpers in conv_helpers.py) ---


@pytest.fixture(scope="session")
def conv_bundle(tmp_path_factory, fracatlas):
    from conv_helpers import make_bundle

    return make_bundle(tmp_path_factory.mktemp("conv_bundle") / "bundle", fracatlas)


@pytest.fixture(scope="session")
def conv_int8(tmp_path_factory, conv_bundle):
    """The test bundle converted to int8 (with the per-layer table), shared by several test files."""
    from convert.tflite import convert_bundle

    return convert_bundle(conv_bundle, "int8", out=tmp_path_factory.mktemp("conv_int8") / "model_int8.tflite")


@pytest.fixture(scope="session")
def conv_valdata(tmp_path_factory, fracatlas) -> Path:
    from conv_helpers import copy_class_folder

    return copy_class_folder(fracatlas, tmp_path_factory.mktemp("conv_valdata") / "data", 12)
