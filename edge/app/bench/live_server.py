"""uvicorn in a background thread on a free loopback port: for benchmarks and tests that need
real sockets and real HTTP in the same process as the model. It runs what `edge serve` runs:
the app's own ServerSettings.uvicorn_kwargs() (bounded protocol, connection cap, timeouts)."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None, timeout: float = 300.0):
        """``app`` from edge.app.server.create_app (its settings are on app.state)."""
        import uvicorn

        self.app = app
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        settings = dataclasses.replace(app.state.settings, host=host, port=self.port)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **settings.uvicorn_kwargs()))
        self.thread = threading.Thread(target=self.server.run, name="edge-live-server", daemon=True)
        self.thread.start()
        deadline = time.time() + timeout
        while not self.server.started:  # lifespan (model load, warm-up) finishes before this
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
