"""Atomic file writes: an interrupted run never leaves a half-written output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError


def _cannot_write(dest: Path, e: OSError) -> OutputError:
    return OutputError(f"cannot write here ({e.strerror or type(e).__name__})", dest)


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output(dest: str | Path, is_dir: bool = False) -> Path:
    """Fail now, with one line, if ``dest`` could not be written later (a run's results are not
    thrown away at the end): a directory where a file goes or the reverse, or a parent that is a
    file or not writable. A parent that exists gets a real probe (a temp file made and removed),
    which also catches read-only mounts and /proc."""
    dest = Path(dest)
    if dest.exists() and dest.is_dir() != is_dir:
        raise OutputError("is a directory; give a file name" if not is_dir else "is a file; give a directory", dest)
    parent = dest if is_dir and dest.is_dir() else dest.absolute().parent
    base = _nearest_existing(parent)
    if not base.is_dir():
        raise OutputError(f"cannot write here ({base} is not a directory)", dest)
    if base == parent:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".edge-probe.", dir=parent)
        except OSError as e:
            raise _cannot_write(dest, e) from None
        os.close(fd)
        os.unlink(tmp)
    elif not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write here ({base} is not writable)", dest)
    return dest


@contextlib.contextmanager
def atomic_path(dest: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` only if the block succeeds.
    An output that cannot be written is an OutputError (one line), never a traceback."""
    dest = Path(dest)
    if dest.is_dir():
        raise OutputError("is a directory; give a file name", dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    except OSError as e:
        raise _cannot_write(dest, e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; outputs are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise _cannot_write(dest, e) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(dest: str | Path, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | Path, text: str) -> Path:
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | Path, obj: Any) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it into place when complete."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as e:
        raise _cannot_write(dest, e) from None
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
