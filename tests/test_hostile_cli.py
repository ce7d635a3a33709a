"""Hostile files mixed with good ones on the command line: `--skip-bad` keeps going, names each bad
file on one line, and gives results for the good ones (real processes, so a traceback would show);
output paths are checked before the work starts."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_hostile_decode import MALFORMED, MARKER, dicom_bytes

ROOT = Path(__file__).resolve().parents[1]
# malformed DICOM fields that leave no usable image (test_hostile_decode checks each is a clean error)
BAD_DICOM = ("NumberOfFrames text", "Rows unknown VR", "PixelData short", "VOI LUT 0 bits")


def run_edge(*args, timeout: float = 600) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "edge", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


def cut_jpeg(data: bytes, frac: float = 0.5) -> bytes:
    """Cut, then the end-of-image marker put back: only the decoder can tell."""
    return data[: int(len(data) * frac)] + b"\xff\xd9"


def short_png(arr: np.ndarray) -> bytes:
    """A PNG whose image data is a complete zlib stream holding only half the declared rows."""
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "PNG")
    data = b.getvalue()
    i = data.find(b"IDAT") - 4
    n = struct.unpack(">I", data[i : i + 4])[0]
    short = zlib.compress(zlib.decompress(data[i + 8 : i + 8 + n])[: arr.shape[0] // 2 * (arr.shape[1] + 1)])
    chunk = struct.pack(">I", len(short)) + b"IDAT" + short + struct.pack(">I", zlib.crc32(b"IDAT" + short))
    return data[:i] + chunk + data[-12:]


def cut_png(arr: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "PNG")
    data = b.getvalue()
    return data[: len(data) * 2 // 3]


@pytest.fixture(scope="module")
def mixed_data(tmp_path_factory, small_data: Path) -> tuple[Path, dict[str, str]]:
    """small_data plus hostile files in every split; returns (root, {relative path: kind})."""
    root = tmp_path_factory.mktemp("mixed") / "data"
    shutil.copytree(small_data, root)
    good_jpeg = next((small_data / "test" / "fractured").glob("*.jpg"))
    grey = np.asarray(Image.open(good_jpeg).convert("L").resize((160, 128)))
    bad: dict[str, bytes] = {
        "train/fractured/cut_terminated.jpg": cut_jpeg(good_jpeg.read_bytes()),
        "train/not_fractured/short_rows.png": short_png(grey),
        "val/fractured/cut.png": cut_png(grey),
        "test/fractured/cut_terminated.jpg": cut_jpeg(good_jpeg.read_bytes(), 0.6),
        "test/not_fractured/short_rows.png": short_png(grey[:, ::-1].copy()),  # not a duplicate of the train one
    }
    splits = ["train/fractured", "train/not_fractured", "val/not_fractured", "test/not_fractured"]
    for i, case in enumerate(BAD_DICOM):
        bad[f"{splits[i]}/malformed_{i}.dcm"] = dicom_bytes(**MALFORMED[case])
    for rel, data in bad.items():
        (root / rel).write_bytes(data)
    return root, {rel: rel.rsplit(".", 1)[1] for rel in bad}


def _clean(err: str) -> None:
    assert "Traceback" not in err, err[-3000:]
    assert MARKER[:10] not in err  # no DICOM value reaches stderr


def _lines_naming(text: str, names: list[str]) -> None:
    for name in names:
        hits = [ln for ln in text.splitlines() if name in ln]
        assert len(hits) == 1, (name, hits)


def test_predict_skip_bad_lists_each_bad_file_and_predicts_the_good(tiny_bundle, mixed_data):
    root, bad = mixed_data
    code, out, err = run_edge("predict", tiny_bundle.path, root / "test", "--skip-bad")
    _clean(err)
    assert code == 1, out + err  # results, and a non-zero exit because files were bad
    test_bad = [Path(r).name for r in bad if r.startswith("test/")]
    assert len(test_bad) == 3
    rows = [ln for ln in out.splitlines() if ln.startswith("|") and ("/test/" in ln)]
    good_rows = [ln for ln in rows if "| fractured |" in ln or "| not_fractured |" in ln]
    assert len(good_rows) == 16, out  # every good test image has a prediction
    for name in test_bad:
        line = next(ln for ln in rows if name in ln)
        assert "truncated" in line or "corrupt" in line or "DICOM" in line or "pixel" in line, line
    assert f"{len(test_bad)} files could not be read" in err


def test_evaluate_skip_bad_names_each_bad_file(tiny_bundle, mixed_data, tmp_path):
    root, bad = mixed_data
    code, out, err = run_edge("evaluate", tiny_bundle.path, "--data", root, "--skip-bad", "--report", tmp_path / "rep")
    _clean(err)
    assert code == 0, err
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["n"] == 16  # the good test images
    test_bad = [Path(r).name for r in bad if r.startswith("test/")]
    assert sorted(Path(s["path"]).name for s in rep["skipped_files"]) == sorted(test_bad)
    _lines_naming(err, test_bad)
    assert "AUROC" in out


def test_evaluate_without_skip_bad_stops_with_one_line(tiny_bundle, mixed_data):
    root, _ = mixed_data
    code, out, err = run_edge("evaluate", tiny_bundle.path, "--data", root)
    _clean(err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), err


def test_train_skip_bad_lists_each_bad_file_and_trains(mixed_data, tmp_path):
    root, bad = mixed_data
    code, out, err = run_edge(
        "train",
        "--data",
        root,
        "--arch",
        "tiny",
        "--epochs",
        "1",
        "--size",
        "32",
        "--batch-size",
        "8",
        "--augment",
        "none",
        "--skip-bad",
        "-o",
        tmp_path / "run",
    )
    _clean(err)
    assert code == 0, err[-3000:]
    assert (tmp_path / "run" / "bundle" / "model_card.json").is_file()
    skipped = json.loads((tmp_path / "run" / "skipped_files.json").read_text())
    assert sorted(Path(s["path"]).name for s in skipped) == sorted(Path(r).name for r in bad)
    _lines_naming(out + err, [str(Path(s["path"]).relative_to(root)) for s in skipped])
    assert "test: n=16" in out  # metrics on the good test images


def test_data_check_flags_every_bad_file(mixed_data):
    root, bad = mixed_data
    code, out, err = run_edge("data", "check", root, "--json", "--strict")
    _clean(err)
    assert code == 1 and "unreadable" in err
    rep = json.loads(out)
    flagged = {u["path"]: u["problem"] for u in rep["unreadable"]}
    assert set(flagged) == set(bad), flagged
    assert "truncated" in flagged["train/fractured/cut_terminated.jpg"]  # the end marker does not fool it
    code, out, err = run_edge("data", "check", root)
    _clean(err)
    _lines_naming(out, list(bad))


OUTPUT_CASES = [
    (["predict", "--csv", "{dir}", "{img}"], "is a directory"),
    (["predict", "--csv", "/proc/edge_out.csv", "{img}"], "cannot write here"),
    (["predict", "--csv", "{file}/x.csv", "{img}"], "not a directory"),
    (["evaluate", "--data", "{data}", "--report", "{file}"], "is a file"),
    (["evaluate", "--data", "{data}", "--report", "/proc/edge_report"], "cannot write here"),
    (["data", "check", "{data}", "-o", "/proc/edge_report"], "cannot write here"),
    (["train", "--data", "{data}", "--arch", "tiny", "-o", "{file}"], "is a file"),
    (["explain", "{img}", "-o", "/proc/edge_explain"], "cannot write here"),
]


@pytest.mark.parametrize("args,expected", OUTPUT_CASES, ids=[" ".join(a[:2]) + " " + e for a, e in OUTPUT_CASES])
def test_unwritable_output_fails_before_any_work(args, expected, small_data, tmp_path):
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("keep me")
    img = next((small_data / "test" / "fractured").glob("*.jpg"))
    subs = {"{dir}": tmp_path / "a_dir", "{file}": tmp_path / "a_file", "{img}": img, "{data}": small_data}
    argv = [a.replace(k, str(v)) for a in args for k, v in [next(((k, v) for k, v in subs.items() if k in a), ("", ""))]]
    code, out, err = run_edge(*argv)
    _clean(err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert out == ""  # nothing was predicted, trained or reported first
    assert (tmp_path / "a_file").read_text() == "keep me"
