"""oneDNN's AVX-512 weight-gradient kernel for 1x1 convolutions corrupts the heap (TensorFlow 2.21):
the toolkit holds oneDNN to AVX2 before TensorFlow loads (edge.core._tf). On an AVX-512 machine,
training the tiny model at 64 px without that aborted every time ("free(): invalid pointer")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_tensorflow_loads_with_onednn_held_to_avx2():
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    code = "import os; from edge.core._tf import tf; tf.constant(1); print(os.environ['ONEDNN_MAX_CPU_ISA'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "AVX2"


def test_training_small_maps_does_not_corrupt_the_heap(tmp_path: Path, bundled_data: Path):
    """The case that aborted: 1x1 convolutions on 16x16 maps (tiny arch, 64 px), in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    cmd = [sys.executable, "-m", "edge", "train", "--data", str(bundled_data / "fracatlas"), "--arch", "tiny", "--size", "64"]
    cmd += ["--epochs", "1", "--augment", "none", "--skip-bad", "-o", str(tmp_path / "run")]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-1500:]}"
    assert (tmp_path / "run" / "bundle" / "model_card.json").is_file()
