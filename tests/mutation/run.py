"""Mutation testing of the contract modules with mutmut 3, one module at a time.

Each module listed in modules.toml is mutated in its own scratch copy of the project
(mutmut 3 writes a mutants/ tree next to its config, so nothing lands in the repository),
with a generated setup.cfg that names the module and its test modules. One mutmut process
runs at a time, with one child (the machine is shared).

    python tests/mutation/run.py                       # every module (about 30 min on 2 cores)
    python tests/mutation/run.py edge/core/metrics.py  # one module
    python tests/mutation/run.py --sample              # the TF-free modules only (a few minutes; .ci/run)
    python tests/mutation/run.py --rev 50ca9bf         # the tree of a commit (e.g. before new tests)

Prints one line per module (killed/total and score) and the surviving mutants; writes
summary.json into the work directory. Exit code 1 when a module scores below --min-score.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KILLED = {"killed", "timeout", "caught by type check"}  # mutmut's statuses that count as detected


def read_modules() -> list[dict]:
    return tomllib.loads((HERE / "modules.toml").read_text())["module"]


def copy_tree(dest: Path, rev: str | None) -> None:
    """The working tree's tracked and unignored files, or the tree of commit ``rev``."""
    dest.mkdir(parents=True)
    if rev:
        with tempfile.TemporaryFile() as f:
            subprocess.run(["git", "archive", rev], cwd=REPO, stdout=f, check=True)
            f.seek(0)
            with tarfile.open(fileobj=f) as tar:
                tar.extractall(dest, filter="data")
        return
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True)
    for name in filter(None, out.stdout.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def write_config(root: Path, module: str, tests: list[str]) -> None:
    """setup.cfg for mutmut: the whole package is importable, only ``module`` is mutated."""
    lines = [
        "[mutmut]",
        "source_paths=",
        "    edge",
        "    train",
        "    convert",
        f"only_mutate={module}",
        # mutmut's limit is CPU seconds, (tests' time in the stats run + constant) x 30: a mutant whose function
        # runs while the cached models are built gets its own build (tests/model_cache.py), ~100 CPU-s more
        "timeout_constant=10",
        # Children are forked from mutmut's fork server, never from the parent: the parent runs the stats pass
        # in-process, so TensorFlow's thread pools exist there, and a child forked from it that calls Keras
        # predict blocks on a lock (no thread owns it after fork) until mutmut's timeout, which mutmut then
        # counts as detected. Seen on every validation.py mutant with the default process_isolation=fork.
        "process_isolation=forkserver",
        # files the tests read besides the packages: the phone's shipped models (the runtime's contract tests
        # re-embed them); without them the stats pass fails and the module reports an error
        "also_copy=",
        "    android_demo/app/src/main/assets",
        "pytest_add_cli_args_test_selection=",
        *[f"    {t}" for t in tests],
        "pytest_add_cli_args=",
        "    -x",
        "    -q",
        "    -p",
        "    no:cacheprovider",
        # pytest's unraisable-exception plugin ends every session with gc.collect() x5 over the child's whole
        # heap (sklearn, scipy, hypothesis, TF): 2 s of a 2.4 s metrics mutant here; a mutant is judged by its
        # tests' pass/fail, which does not need it
        "    -p",
        "    no:unraisableexception",
        "",
    ]
    (root / "setup.cfg").write_text("\n".join(lines))


def mutmut(root: Path, *args: str, log: Path | None = None, children: int = 1) -> subprocess.CompletedProcess:
    # no PYTHONPATH here: mutmut puts mutants/ first itself, and an earlier import defeats its trampolines
    env = dict(os.environ, EDGE_DATA_DIR=os.environ.get("EDGE_DATA_DIR", "/work/shared/data"))
    # models the tests build are made once per module run and only loaded by later mutants; a mutant
    # whose function runs while they are built gets its own build (tests/model_cache.py explains why)
    env["EDGE_TEST_MODEL_CACHE"] = str(root / "model-cache")
    env.setdefault("EDGE_HYPOTHESIS_EXAMPLES", "20")  # each mutant reruns the property tests: fewer draws
    # several mutants at once share the cores instead of each starting a thread per core
    threads = str(max(1, (os.cpu_count() or 1) // children))
    env.setdefault("TF_NUM_INTRAOP_THREADS", threads)
    env.setdefault("TF_NUM_INTEROP_THREADS", threads)
    with open(log, "a") if log else contextlib.nullcontext(subprocess.PIPE) as out:
        return subprocess.run(
            [sys.executable, "-m", "mutmut", *args], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )


def run_module(work: Path, entry: dict, rev: str | None, children: int = 1) -> dict:
    module = entry["path"]
    root = work / module.replace("/", "_").removesuffix(".py")
    if root.exists():
        shutil.rmtree(root)
    copy_tree(root, rev)
    tests = [t for t in entry["tests"] if (root / t).is_file()]
    if not tests:
        return {"module": module, "error": "no test module of the list exists in this tree"}
    write_config(root, module, tests)
    log = root / "mutmut.log"
    focus = entry.get("focus", [])  # mutant-name globs; when none matches (helpers renamed), the whole module runs
    mutmut(root, "run", "--max-children", str(children), *focus, log=log, children=children)
    if "failed to collect stats" in log.read_text(errors="replace"):
        # a test failed on the unmutated code: every mutant would then "survive" with score 0; say so instead
        return {"module": module, "tests": tests, "error": f"tests fail on the unmutated code (mutmut stats pass, see {log})"}
    mutmut(root, "export-cicd-stats", log=log)
    stats_file = root / "mutants" / "mutmut-cicd-stats.json"
    if not stats_file.is_file():
        return {"module": module, "tests": tests, "error": f"mutmut produced no results (see {log})"}
    res = mutmut(root, "results", "--all", "true").stdout or ""
    status = {}
    for line in res.splitlines():
        name, _, st = line.strip().rpartition(": ")
        if name:
            status[name] = st
    if focus and any(fnmatch.fnmatch(k, f) for k in status for f in focus):
        status = {k: v for k, v in status.items() if any(fnmatch.fnmatch(k, f) for f in focus)}
    survivors = sorted(k for k, v in status.items() if v not in KILLED)
    total = len(status)
    killed = total - len(survivors)
    return {
        "module": module,
        "tests": tests,
        "total": total,
        "killed": killed,
        "score": round(100.0 * killed / total, 1) if total else None,
        "survivors": {k: status[k] for k in survivors},
        # counted as detected, but listed: a timeout is a real kill only if the mutant loops, not if the child hung
        "timeouts": sorted(k for k, v in status.items() if v == "timeout"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help="source paths from modules.toml (default: all)")
    ap.add_argument("--sample", action="store_true", help="only the modules marked sample = true (TF-free, a few minutes)")
    ap.add_argument("--rev", help="mutate and test the tree of this git commit instead of the working tree")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edge-mutation"), help="scratch directory")
    ap.add_argument("--min-score", type=float, default=0.0, help="exit 1 when a module scores below this percentage")
    ap.add_argument(
        "--children",
        type=int,
        default=os.cpu_count() or 1,
        help="mutants tested at once (default: one per core; TensorFlow in each gets cores / children threads)",
    )
    a = ap.parse_args()
    entries = read_modules()
    if a.modules:
        unknown = set(a.modules) - {e["path"] for e in entries}
        if unknown:
            ap.error(f"not in modules.toml: {', '.join(sorted(unknown))}")
        by_path = {e["path"]: e for e in entries}
        entries = [by_path[m] for m in dict.fromkeys(a.modules)]  # in the order asked
    if a.sample:
        entries = [e for e in entries if e.get("sample")]
    if a.rev:  # resolved once: commits made while the run goes on must not change what later modules see
        a.rev = subprocess.run(
            ["git", "rev-parse", "--verify", f"{a.rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    results, low = [], False
    start = time.monotonic()
    for entry in entries:  # one module at a time: never two mutmut processes
        t0 = time.monotonic()
        r = run_module(work, entry, a.rev, a.children)
        r["seconds"] = round(time.monotonic() - t0)
        results.append(r)
        if "error" in r:
            print(f"{r['module']}: error: {r['error']}", flush=True)
            low = True
            continue
        timed_out = f", {len(r['timeouts'])} of them by timeout" if r.get("timeouts") else ""
        print(f"{r['module']}: {r['killed']}/{r['total']} killed{timed_out}, score {r['score']}% ({r['seconds']} s)", flush=True)
        by_function: dict[str, list[str]] = {}
        for name, st in r["survivors"].items():  # x_<function>__mutmut_<n>
            fn, _, n = name.rpartition("__mutmut_")
            by_function.setdefault(f"{fn.rpartition('.')[2].removeprefix('x_')} ({st})", []).append(n)
        for fn, ns in sorted(by_function.items()):
            print(f"    survived in {fn}: mutants {', '.join(sorted(ns, key=int))}", flush=True)
        low |= r["score"] is not None and r["score"] < a.min_score
    total = round(time.monotonic() - start)
    print(f"total: {total} s ({a.children} children, {os.cpu_count()} cores)", flush=True)
    summary = {"rev": a.rev, "children": a.children, "seconds": total, "results": results}
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
