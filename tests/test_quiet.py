"""Quiet by default: native lines written to file descriptor 2 vanish inside quiet_native, the
toolkit's own Python lines do not, and a failure brings the native lines back as its diagnosis."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from edge.core._tf import quiet_native


def _native(text: str) -> None:
    os.write(2, text.encode())  # what C++ code does: straight to the descriptor, past Python


def test_native_lines_go_python_lines_stay(capfd):
    log = logging.getLogger("edge.test_quiet")
    with quiet_native(show=False):
        _native("fully_quantize: 0, inference_type: 6\n")
        log.warning("only 24 calibration images")
        print("own line", file=sys.stderr)
    _native("after the block\n")
    err = capfd.readouterr().err
    assert "fully_quantize" not in err
    assert "own line" in err and "after the block" in err


def test_failure_replays_the_native_lines(capfd):
    with pytest.raises(RuntimeError, match="conversion failed"), quiet_native(show=False):
        _native("error: 'tfl.conv_2d' op is neither a custom op nor a flex op\n")
        raise RuntimeError("conversion failed")
    assert "neither a custom op" in capfd.readouterr().err


def test_show_and_verbose_logging_keep_everything(capfd):
    with quiet_native(show=True):
        _native("XNNPACK delegate\n")
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.INFO)  # what `edge -v` does
    try:
        with quiet_native():
            _native("MLIR pass\n")
    finally:
        root.setLevel(old)
    err = capfd.readouterr().err
    assert "XNNPACK delegate" in err and "MLIR pass" in err


def test_tf_loads_on_first_access_only():
    import subprocess

    code = (
        "import sys; import edge.core._tf as t; assert 'tensorflow' not in sys.modules; "
        "from edge.core._tf import keras; assert 'tensorflow' in sys.modules and keras.__name__ == 'tf_keras'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # importing TensorFlow prints nothing
