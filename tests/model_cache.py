"""Model artifacts built once per mutation run, for tests whose fixtures train or convert a model.

Under mutation testing (mutmut 3) every mutant reruns the tests that reach its function, in a
fresh pytest session: a fixture that builds and converts a tiny model costs 40-70 s per mutant on
2 cores. ``cached()`` keeps such an artifact (a bundle directory, a .tflite) in an on-disk cache
so that a mutant only copies and loads it. It is off unless EDGE_TEST_MODEL_CACHE names the cache
directory (tests/mutation/run.py sets it); ordinary test runs build every artifact afresh.

Why a cached artifact cannot hide a mutant:
- The key hashes the source of every module that can build it (all of edge/, train/ and convert/
  as imported, i.e. mutmut's mutants/ tree, plus the test files that describe the build) and the
  build's parameters (including the hashes of the artifacts it starts from). Any edit gives new
  artifacts.
- mutmut 3 puts all mutants of a module in one file and picks the active one at call time
  (MUTANT_UNDER_TEST), and it mutates only function bodies. So a mutant can change an artifact
  only if its function runs while the artifact is built. While building, a profiler records
  every function of the mutants/ tree that runs (mutmut's ``<function>__mutmut_orig`` copies and
  mutants); the set is stored with the artifact. A mutant whose function is in that set gets a
  fresh build of its own (slow, correct, never stored); any other mutant's build would run exactly
  the unmutated code, so it gets the stored artifact.
- ``report_only`` names functions whose calls (and everything under them) are left out of that
  set because their result is not part of the artifact: ``convert.tflite.agreement`` measures
  Keras vs LiteRT for the conversion report, and only ``keep_float`` (which the builders here do
  not pass; the builder asserts nothing was kept in float) lets it change the written .tflite.
  That is what keeps the runtime's quantize/dequantize mutants on the cached .tflite: the
  module under mutation reads the artifact, it does not produce it.
- The cache is entered only with no mutant active or a mutant outside the recorded set; mutmut's
  "fail" probe (every mutated function raises) always builds afresh. A finished entry is renamed
  into place in one step, so a crashed or timed-out child leaves no half-written artifact.
- Tests get a copy of the artifact in their own tmp directory: tampering with it changes
  nothing stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

CACHE_ENV = "EDGE_TEST_MODEL_CACHE"
TESTS = Path(__file__).resolve().parent
_MARK = "__mutmut_"
T = TypeVar("T")


def _source_hash(extra: Iterable[Path]) -> str:
    import convert
    import edge
    import train

    h = hashlib.sha256()
    roots = [Path(m.__file__).resolve().parent for m in (edge, train, convert)]  # the mutants/ tree under mutmut
    files = [f for r in roots for f in sorted(r.rglob("*.py"))] + [Path(p).resolve() for p in extra]
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _function_of(name: str) -> str:
    """'edge.core.runtime.xǁEdgeModelǁquantize_input__mutmut_3' -> 'edge.core.runtime.xǁEdgeModelǁquantize_input'."""
    return name.partition(_MARK)[0]


@contextmanager
def _recording(hits: set[str], report_only: tuple[str, ...]) -> Iterator[None]:
    """Record the mutmut-generated functions (orig copies and mutants) called in this block, in any thread."""
    depth = threading.local()

    def prof(frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        code = frame.f_code
        qual = f"{frame.f_globals.get('__name__')}.{code.co_name}"
        if qual in report_only:
            depth.n = getattr(depth, "n", 0) + (1 if event == "call" else -1)
        elif event == "call" and _MARK in code.co_name and not getattr(depth, "n", 0):
            hits.add(f"{frame.f_globals.get('__name__')}.{_function_of(code.co_name)}")

    old, old_t = sys.getprofile(), threading.getprofile()
    sys.setprofile(prof)
    threading.setprofile(prof)
    try:
        yield
    finally:
        sys.setprofile(old)
        threading.setprofile(old_t)


def cached(
    name: str,
    params: dict[str, Any],
    build: Callable[[Path], object],
    load: Callable[[Path], T],
    dest: Path,
    sources: Iterable[Path] = (),
    report_only: tuple[str, ...] = (),
) -> T:
    """``build(dest)`` writes the artifact into the empty directory ``dest``; ``load(dest)`` returns it.

    Without EDGE_TEST_MODEL_CACHE this is ``build(dest); return load(dest)``. ``sources``: test files
    that describe the build (their text is part of the key); ``params``: everything else it depends on.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = os.environ.get(CACHE_ENV)
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if not root or mutant == "fail":
        build(dest)
        return load(dest)
    key = hashlib.sha256(
        json.dumps([name, params, _source_hash([TESTS / "model_cache.py", *sources])], sort_keys=True, default=str).encode()
    ).hexdigest()[:20]
    entry = Path(root) / f"{name}-{key}"
    fn = _function_of(mutant) if _MARK in mutant else None
    if (entry / "hits.json").is_file():
        hits = set(json.loads((entry / "hits.json").read_text()))
        if fn not in hits:  # the build never runs this mutant's function: the stored artifact is what it would make
            shutil.copytree(entry / "artifact", dest, dirs_exist_ok=True)
            return load(dest)
        build(dest)  # this mutant runs while the artifact is built: its own build, never stored
        return load(dest)
    recorded: set[str] = set()
    with _recording(recorded, report_only):
        build(dest)
    if fn is None or fn not in recorded:
        Path(root).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        shutil.copytree(dest, tmp / "artifact", symlinks=True)
        (tmp / "hits.json").write_text(json.dumps(sorted(recorded)))
        try:
            tmp.rename(entry)
        except OSError:  # another process stored it first
            shutil.rmtree(tmp, ignore_errors=True)
    return load(dest)
