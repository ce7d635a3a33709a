"""`edge demo`, the README's first command: the embedded default and the bundled radiographs,
every stage's output written and every line of the run printed."""

from __future__ import annotations

import csv
import json

from click.testing import CliRunner

from edge.app.cli import main
from edge.core.bundle import SAMPLES_DIR, load_bundle
from edge.core.data import list_images
from edge.core.runtime import EdgeModel


def test_demo_runs_every_stage_on_the_embedded_default(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "-o", str(out)])
    assert r.exit_code == 0, r.output
    b = load_bundle(None)
    lines = r.output.splitlines()
    for step in range(1, 7):
        assert any(ln.startswith(f"{step}. ") for ln in lines), (step, r.output)
    assert f"bundle {b.sha256[:12]}" in r.output and b.model_id in r.output
    # 2: one row per bundled radiograph, its call at the card's threshold
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == len(list_images([SAMPLES_DIR])) == 36
    for row in rows:
        p = float(row["p_positive"])
        assert row["prediction"] == (b.positive_label if p >= b.threshold else "not_fractured") or abs(p - b.threshold) < 1e-4
    # 3-5: the reports, and an int8 model that carries the bundle's contract
    assert json.loads((out / "evaluation" / "report.json").read_text())["n"] == 36
    edge = EdgeModel.load(out / "fracture_int8.tflite")
    assert edge.threshold == b.threshold and edge.labels == b.labels and edge.preprocess_spec == b.spec
    gate = json.loads((out / "validation" / "report.json").read_text())
    assert gate["data"]["n"] == 36
    # a failed gate is printed as failed, with the reason and what one disagreement weighs on 36 images
    if not gate["passed"]:
        assert "validation gate FAILED" in r.output and "one disagreement moves" in r.output
        # and whether the drift is more than those few flips: the paired difference, as in the report
        spec = gate["paired"]["specificity"]
        assert f"specificity {spec['difference']:.3f} ({spec['ci'][0]:.3f} to {spec['ci'][1]:.3f}" in r.output
    else:
        assert "validation gate PASSED" in r.output and "one disagreement moves" not in r.output
    # 6: two overlays
    assert len(list((out / "explain").glob("*.png"))) >= 2
