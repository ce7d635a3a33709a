"""`edge train --strategy multiworker`: two worker processes on loopback, one killed mid-training, the run resumed.

The heavy test runs the real command twice as two processes each (TensorFlow import, tracing of
the distributed step): minutes on a shared 2-core machine, so it is marked heavy."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.core.bundle import load_bundle
from edge.core.errors import EdgeError

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 6


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _log(run: Path) -> list[dict[str, str]]:
    path = run / "log_all.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class _Cluster:
    """`edge train` workers on loopback, each with its TF_CONFIG; every one is killed at teardown if still alive."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.procs: list[subprocess.Popen] = []

    def start(self, data: Path, out: Path, name: str) -> list[subprocess.Popen]:
        cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
        started = []
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            cmd = [sys.executable, "-m", "edge", "train", "--data", str(data), "--arch", "tiny", "--size", "32"]
            cmd += ["--batch-size", "8", "--epochs", str(EPOCHS), "--patience", str(EPOCHS), "--seed", "3"]
            cmd += ["--strategy", "multiworker", "-o", str(out)]
            with open(self.logs / f"{name}.worker{index}.log", "wb") as log:
                proc = subprocess.Popen(
                    cmd, cwd=REPO, env={**os.environ, "TF_CONFIG": tf_config}, stdout=log, stderr=subprocess.STDOUT
                )
            self.procs.append(proc)
            started.append(proc)
        return started

    def output(self, name: str, index: int) -> str:
        return (self.logs / f"{name}.worker{index}.log").read_text(errors="replace")

    def tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.logs.glob("*.log")))

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=60)


@pytest.fixture
def cluster(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    c = _Cluster(logs)
    yield c
    c.kill_all()  # no orphan workers, whatever failed


@pytest.mark.heavy
def test_two_workers_survive_a_killed_worker_and_resume_to_a_bundle(small_data, tmp_path, cluster):
    from train.distribute import backed_up_epochs

    t0 = time.monotonic()
    run = tmp_path / "run"
    first = cluster.start(small_data, run, "first")
    deadline = time.monotonic() + 900
    while len(_log(run)) < 3:  # three epochs logged: a backup to resume from, EPOCHS - 3 still to train
        assert all(p.poll() is None for p in first), "a worker stopped before epoch 3\n" + cluster.tails()
        assert time.monotonic() < deadline, "no third epoch in 15 minutes\n" + cluster.tails()
        time.sleep(0.2)
    first[1].kill()  # SIGKILL: no cleanup, as when a machine goes away
    t_kill = time.monotonic()
    # the chief notices the lost peer and stops with an error instead of waiting for it forever
    try:
        chief_rc = first[0].wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("the chief kept running 5 minutes after its peer was killed\n" + cluster.tails())
    chief_exit_s = time.monotonic() - t_kill
    assert chief_rc != 0, cluster.tails()
    kept = _log(run)
    assert 3 <= len(kept) < EPOCHS, "killed mid-training"
    assert not (run / "bundle").exists()  # no half-written bundle
    saved = backed_up_epochs(run / "backup" / "all")
    assert saved >= len(kept) - 1 >= 2  # the log runs at most one epoch ahead of the backup

    t_restart = time.monotonic()
    second = cluster.start(small_data, run, "second")  # the same command on both workers, new ports
    try:
        rcs = [p.wait(timeout=900) for p in second]
    except subprocess.TimeoutExpired:
        pytest.fail("the resumed run did not finish in 15 minutes\n" + cluster.tails())
    assert rcs == [0, 0], cluster.tails()
    assert "bundle: " in cluster.output("second", 0)  # the chief (worker 0) wrote the bundle
    assert "the chief writes the bundle" in cluster.output("second", 1)

    rows = _log(run)
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS)), "every epoch logged once"
    assert all(float(r["lr"]) > 0 for r in rows)  # the scheduler logs before the CSV logger writes
    assert rows[:saved] == kept[:saved]  # the finished epochs were kept, not trained again
    bundle = load_bundle(run / "bundle")
    training = bundle.card.training
    assert training["strategy"] == "multiworker" and training["epochs"] == EPOCHS
    assert training["distribution"] == {"strategy": "MultiWorkerMirroredStrategy", "workers": 2, "replicas": 2}
    assert training["resumes"] == [{"phase": "all", "epoch": saved, "workers": 2}]
    assert set(bundle.card.metrics) == {"val", "test"} and 0.0 <= bundle.threshold <= 1.0
    assert bundle.load_model().input_shape[1:] == (32, 32, 1)
    assert json.loads((run / "state.json").read_text())["phases_done"] == ["all"]
    # the chief's finished fit removed the backup; workers' temporary copies are gone too
    assert not [p for p in (run / "backup").rglob("*") if p.is_file()]
    assert not [p for p in run.rglob("*") if "workertemp" in p.name]
    print(
        f"\nmultiworker: kill after {len(kept)} logged epochs, backup held {saved}; chief stopped "
        f"{chief_exit_s:.0f} s after the kill; resumed run {time.monotonic() - t_restart:.0f} s; "
        f"total {time.monotonic() - t0:.0f} s"
    )


def test_multiworker_needs_a_cluster_description(monkeypatch):
    from train.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(EdgeError, match="needs TF_CONFIG"):
        make_strategy("multiworker")
    for bad in ("not json", '{"cluster": {}}', '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 1}}'):
        monkeypatch.setenv("TF_CONFIG", bad)
        with pytest.raises(EdgeError, match="TF_CONFIG is not a cluster description"):
            make_strategy("multiworker")
    with pytest.raises(EdgeError, match="unknown strategy"):
        make_strategy("ring")


def test_resumed_log_is_cut_back_to_the_backup(tmp_path):
    from train.distribute import backed_up_epochs, keep_log_rows

    log = tmp_path / "log_all.csv"
    log.write_text("epoch,loss\n0,0.7\n1,0.6\n2,0.5\n")
    keep_log_rows(log, 2)  # a crash after epoch 3 was logged but before it was backed up
    assert log.read_text() == "epoch,loss\n0,0.7\n1,0.6\n"
    keep_log_rows(log, 5)  # never adds or drops rows the backup holds
    assert log.read_text() == "epoch,loss\n0,0.7\n1,0.6\n"
    keep_log_rows(tmp_path / "missing.csv", 0)
    assert not (tmp_path / "missing.csv").exists()
    assert backed_up_epochs(tmp_path / "no_backup") == 0


def test_best_weights_are_replaced_only_by_a_better_epoch_and_atomically(tmp_path):
    from train.distribute import BestWeights
    from train.models import create_model

    model = create_model("tiny", (32, 32, 1), 1)
    path = tmp_path / "best.weights.h5"
    best = BestWeights(path, "val_auc", best=0.55, chief=True)
    best.set_model(model)
    best.on_epoch_end(0, {"val_auc": 0.5})  # below the best of the run before a resume
    assert not path.exists()
    best.on_epoch_end(1, {"val_auc": 0.6})
    first = path.read_bytes()
    model.set_weights([w + 1.0 for w in model.get_weights()])
    best.on_epoch_end(2, {"val_auc": 0.6})  # not better: the file keeps epoch 1's weights
    assert path.read_bytes() == first
    best.on_epoch_end(3, {"val_auc": 0.7})
    assert path.read_bytes() != first
    fresh = create_model("tiny", (32, 32, 1), 1)
    fresh.load_weights(str(path))
    assert all((a == b).all() for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
