"""The audit finds the real truncated JPEGs and a planted cross-split duplicate."""

import io
import shutil

from PIL import Image

from edge.core.audit import audit


def test_audit_finds_truncated_files_and_leakage(tmp_path, small_data, fracatlas):
    root = tmp_path / "data"
    shutil.copytree(small_data, root)
    # real truncated radiographs from FracAtlas (the README names this id range)
    truncated = [
        p
        for p in sorted((fracatlas / "train" / "not_fractured").glob("IMG00040*.jpg"))
        if not p.read_bytes().rstrip(b"\0").endswith(b"\xff\xd9")
    ][:3]
    assert truncated, "expected truncated JPEGs in FracAtlas"
    for p in truncated:
        shutil.copy(p, root / "train" / "not_fractured" / p.name)
    # plant leakage: an exact copy and a re-encoded copy of a training image in the test split
    src = sorted((root / "train" / "fractured").glob("*.jpg"))[0]
    shutil.copy(src, root / "test" / "fractured" / "copy_exact.jpg")
    buf = io.BytesIO()
    Image.open(src).save(buf, "JPEG", quality=70)
    (root / "test" / "fractured" / "copy_reencoded.jpg").write_bytes(buf.getvalue())

    rep = audit(root)
    bad = {b["path"] for b in rep["unreadable"]}
    assert bad == {f"train/not_fractured/{p.name}" for p in truncated}
    assert all("truncated" in b["problem"] for b in rep["unreadable"])
    leaks = {(d["kind"], d["b"] if d["a"].startswith("train") else d["a"]) for d in rep["leakage"]}
    assert ("exact", "test/fractured/copy_exact.jpg") in leaks
    assert ("near", "test/fractured/copy_reencoded.jpg") in leaks
    assert rep["counts"]["train"]["fractured"] == 16
    assert rep["images"]["kinds"] == {"jpeg": rep["n"] - len(truncated)}


def test_cli_strict_exit_and_json(tmp_path, small_data):
    import json

    from click.testing import CliRunner

    from edge.app.cli import main

    root = tmp_path / "d"
    shutil.copytree(small_data, root)
    ok = CliRunner().invoke(main, ["data", "check", str(root), "--strict", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["leakage"] == []
    src = sorted((root / "val" / "fractured").glob("*.jpg"))[0]
    shutil.copy(src, root / "test" / "fractured" / "dup.jpg")
    bad = CliRunner().invoke(main, ["data", "check", str(root), "--strict"])
    assert bad.exit_code == 1
    assert "duplicates across splits" in bad.output
