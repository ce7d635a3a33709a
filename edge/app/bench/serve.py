"""`edge bench serve`: requests/s of POST /v1/predict against real `edge serve` processes with
concurrent keep-alive clients. Several source trees (`--tree`, e.g. a `git worktree` of an older
commit) are served side by side and measured in interleaved rounds, because this kind of machine's
speed drifts over minutes: a before/after figure from separate runs would measure the drift."""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[3]


class _Served:
    """`python -m edge serve --no-auth` run from ``tree`` (its own code: the tree is first on sys.path)."""

    def __init__(self, tree: Path, workers: int, log: Path):
        from .live_server import free_port

        self.tree, self.port = tree, free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge",
                "serve",
                "--no-auth",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ],
            cwd=tree,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        deadline = time.time() + 300
        while not self._ready():
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise click.ClickException(f"edge serve from {tree} did not start (log: {log})")
            time.sleep(0.5)

    def _ready(self) -> bool:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/readyz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _multipart(data: bytes) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = (
        (f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
        + data
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={b}"


def load(port: int, data: bytes, clients: int, seconds: float) -> tuple[float, int]:
    """``clients`` threads, each one keep-alive connection posting ``data`` for ``seconds``
    (http.client: the lightest client, so the load generator takes little of the CPU it measures).
    Returns (successful requests per second, failed requests)."""
    body, ctype = _multipart(data)
    ok, bad, lock = [0], [0], threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.perf_counter() < stop:
            conn.request("POST", "/v1/predict", body, {"Content-Type": ctype})
            r = conn.getresponse()
            r.read()
            with lock:
                (ok if r.status == 200 else bad)[0] += 1
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok[0] / (time.perf_counter() - t0), bad[0]


@click.command()
@click.option(
    "--tree",
    "trees",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Source tree to serve from (repeatable; default: this one). E.g. `git worktree add /tmp/before REV`.",
)
@click.option("--clients", default=8, show_default=True, help="Concurrent keep-alive clients.")
@click.option("--seconds", default=20.0, show_default=True, help="Duration of each measurement.")
@click.option("--rounds", default=3, show_default=True, help="Interleaved rounds (each tree measured once per round).")
@click.option("--workers", default=2, show_default=True, help="`edge serve --workers` for every tree.")
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Uploaded image (default: the first FracAtlas test fractured JPEG).",
)
@click.option("--data", default=None, type=click.Path(), help="FracAtlas folder (default: EDGE_DATA_DIR or ../shared/data).")
def bench(trees, clients, seconds, rounds, workers, image, data) -> None:
    """Requests/s of /v1/predict with concurrent clients against real `edge serve` processes,
    every tree served at once and measured in interleaved rounds (median reported)."""
    from .explain import _data_root

    img = Path(image) if image else sorted((_data_root(data) / "test" / "fractured").glob("*.jpg"))[0]
    payload = img.read_bytes()
    paths = [Path(t).resolve() for t in trees] or [REPO]
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    servers = []
    try:
        for i, t in enumerate(paths):
            servers.append(_Served(t, workers, logs / f"edge-bench-serve-{os.getpid()}-{i}.log"))
        click.echo(
            f"image {img.name} ({len(payload)} bytes); {clients} clients x {seconds:.0f} s; "
            f"{rounds} interleaved rounds; {os.cpu_count()} cores; workers {workers}"
        )
        for s in servers:
            load(s.port, payload, clients, min(3.0, seconds))  # warm-up (autograph, caches)
        rates: dict[Path, list[float]] = {t: [] for t in paths}
        for r in range(rounds):
            for s in servers if r % 2 == 0 else servers[::-1]:  # alternate the order too
                rps, failed = load(s.port, payload, clients, seconds)
                rates[s.tree].append(rps)
                click.echo(f"round {r + 1}: {s.tree}: {rps:.1f} req/s" + (f" ({failed} failed)" if failed else ""))
    finally:
        for s in servers:
            s.stop()
    for t, v in rates.items():
        click.echo(f"{t}: median {statistics.median(v):.1f} req/s (runs {', '.join(f'{x:.1f}' for x in v)})")
