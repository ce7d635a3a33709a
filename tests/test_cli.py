"""The CLI end to end on real radiographs, and every kind of bad input: one line, non-zero exit, no traceback."""

import json
import shutil
import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from edge.app.cli import main


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


def run_subprocess(*args):
    """A real process: what a user sees on stderr, tracebacks included if any."""
    p = subprocess.run([sys.executable, "-m", "edge", *map(str, args)], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_predict_table_and_csv(tiny_bundle, small_data, tmp_path):
    code, out = run("predict", tiny_bundle.path, small_data / "test" / "fractured", "--csv", tmp_path / "p.csv")
    assert code == 0, out
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0].startswith("source,prediction,p(fractured),p(not_fractured),decision")
    assert len(rows) == 1 + 8


def test_evaluate_report_has_required_keys_and_plots(tiny_bundle, small_data, fracatlas, tmp_path):
    code, out = run(
        "evaluate", tiny_bundle.path, "--data", small_data, "--metadata", fracatlas / "metadata.csv", "--report", tmp_path / "rep"
    )
    assert code == 0, out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    for key in ("n", "accuracy", "precision", "recall", "f1", "auroc", "sensitivity", "specificity", "threshold"):
        assert key in rep
    assert rep["n"] == 16 and rep["split"] == "test"
    assert "hardware=0" in rep["subgroups"] and "hand=1" in rep["subgroups"]
    assert {"roc.png", "confusion.png", "reliability.png"} <= {p.name for p in (tmp_path / "rep").iterdir()}
    assert "AUROC" in (tmp_path / "rep" / "report.md").read_text()


def _truncated(fracatlas):
    return next(
        p
        for p in sorted((fracatlas / "train" / "not_fractured").glob("IMG00040*.jpg"))
        if not p.read_bytes().rstrip(b"\0").endswith(b"\xff\xd9")
    )


def test_bad_inputs_give_one_line_and_nonzero_exit(tiny_bundle, small_data, fracatlas, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "noimg" / "fractured").mkdir(parents=True)
    (tmp_path / "noimg" / "not_fractured").mkdir(parents=True)
    shutil.copy(next((small_data / "train" / "fractured").glob("*.jpg")), tmp_path / "noimg" / "fractured")
    (tmp_path / "notes.jpg").write_text("not an image")
    other = tmp_path / "other_labels"
    shutil.copytree(small_data / "test", other)
    (other / "fractured").rename(other / "broken_bone")
    damaged = tmp_path / "damaged_bundle"
    shutil.copytree(tiny_bundle.path, damaged)
    with open(damaged / "model.h5", "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 50)
    cases = [
        (["predict", tiny_bundle.path, tmp_path / "missing.jpg"], "no such file"),
        (["predict", tiny_bundle.path, tmp_path / "empty"], "folder has no images"),
        (["predict", tiny_bundle.path, tmp_path / "notes.jpg"], "unknown format"),
        (["predict", tiny_bundle.path, _truncated(fracatlas)], "truncated"),
        (["evaluate", tiny_bundle.path, "--data", tmp_path / "missing"], "does not exist"),
        (["evaluate", tiny_bundle.path, "--data", tmp_path / "noimg"], "class folder has no images"),
        (["evaluate", tiny_bundle.path, "--data", other], "not among the model's classes"),
        (["predict", damaged, small_data / "test"], "SHA-256 does not match"),
        (["predict", tmp_path / "empty", small_data / "test"], None),  # an empty dir is not a bundle: treated as images
        (["train", "--data", tmp_path / "empty", "-o", tmp_path / "r"], "no class folders"),
    ]
    for args, expected in cases:
        code, out, err = run_subprocess(*args)
        assert code != 0, (args, out)
        assert "Traceback" not in err, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
        if expected:
            assert expected in lines[0], (expected, lines[0])


def test_skip_bad_lists_files_and_keeps_going(tiny_bundle, small_data, fracatlas, tmp_path):
    bad = _truncated(fracatlas)
    code, out = run("predict", tiny_bundle.path, small_data / "test" / "fractured", bad, "--skip-bad")
    assert code == 1  # results for the good files, and a non-zero exit because one file was bad
    assert bad.name in out and "truncated" in out
    assert out.count("| fractured |") + out.count("| not_fractured |") == 8


def test_help_teaches():
    code, out = run("--help")
    assert code == 0 and "train -> convert" in out
    code, out = run("train", "--help")
    assert "--imbalance" in out and "Example" in out


def test_report_of_a_fractures_only_set_shows_no_specificity():
    # an external archive of fractures only (e.g. bone_break_types): the rates line must not claim 0.000
    # (here, not in test_metrics.py: that file runs once per metrics mutant, and this import costs 0.2 s)
    from edge.app.evaluate import _rates_line
    from edge.core.metrics import binary_metrics

    m = binary_metrics(np.ones(5), np.array([0.2, 0.6, 0.7, 0.9, 0.95]), 0.5, ["neg", "pos"], "pos")
    line = _rates_line(m)
    assert "specificity – (0/0; –)" in line and "Sensitivity 0.800 (4/5; 95% exact interval 0.284–0.995)" in line
