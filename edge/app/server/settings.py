"""Server settings: built by `edge serve` (or a test), checked before any model is loaded."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from edge.core.errors import EdgeError

TOKEN_ENV = "EDGE_API_TOKEN"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # bearer token for every /v1 route
    no_auth: bool = False  # only on loopback
    max_upload_mb: float = 20.0
    max_pixels: int = 50_000_000  # decompression-bomb guard (a 7000x7000 DR image passes)
    workers: int = 2  # inference threads
    queue_size: int = 16  # requests allowed to wait beyond the running ones; more -> 503
    cors_origins: tuple[str, ...] = ()  # CORS off unless origins are listed
    layer: str | None = None  # CAM target layer (default: the card's gradcam_layer)
    overlay_max_side: int = 768  # the overlay PNG is for eyes on a phone
    max_decoded_mb: float = 64.0  # decoding budget per image (edge.core.limits), checked from the header
    max_connections: int = 64  # open connections; uvicorn answers 503 beyond (limit_concurrency)
    header_timeout: float = 10.0  # seconds for a request's headers to arrive (slowloris)
    body_timeout: float = 60.0  # seconds for a whole upload; also 10 s without a byte closes it

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def limits(self):
        from edge.core.limits import Limits

        return Limits(int(self.max_decoded_mb * 1024 * 1024), self.max_pixels)

    @property
    def connection_limits(self):
        from .protocol import ConnectionLimits

        return ConnectionLimits(header_timeout=self.header_timeout, body_idle_timeout=min(10.0, self.body_timeout))

    def uvicorn_kwargs(self) -> dict:
        """How `edge serve` and the tests start uvicorn: the bounded protocol and the connection cap."""
        from .protocol import bounded_protocol

        return dict(
            host=self.host,
            port=self.port,
            http=bounded_protocol(self.connection_limits),
            limit_concurrency=self.max_connections,
            timeout_keep_alive=5,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )

    @property
    def auth(self) -> bool:
        return not self.no_auth

    def check(self) -> ServerSettings:
        if self.no_auth:
            if not is_loopback(self.host):
                raise EdgeError(
                    f"--no-auth is refused on {self.host}: it would expose the model without a token",
                    hint="bind to 127.0.0.1, or set --token / EDGE_API_TOKEN",
                )
        elif not self.token:
            raise EdgeError("no API token", hint=f"pass --token T or set {TOKEN_ENV} (or --no-auth on 127.0.0.1 for local use)")
        elif len(self.token) < 8:
            raise EdgeError("the API token is too short (at least 8 characters)")
        if not 1 <= self.port <= 65535:
            raise EdgeError(f"--port {self.port} is not a TCP port (1-65535)")
        if self.max_connections < 1 or self.header_timeout <= 0 or self.body_timeout <= 0 or self.max_decoded_mb <= 0:
            raise EdgeError("--max-connections, the timeouts and --max-decoded-mb must be positive")
        if self.workers < 1 or self.queue_size < 0:
            raise EdgeError("--workers must be at least 1 and --queue-size at least 0")
        if self.max_upload_mb <= 0 or self.max_pixels <= 0:
            raise EdgeError("--max-upload-mb and --max-pixels must be positive")
        if "*" in self.cors_origins and self.auth:
            pass  # allowed: the bearer token still guards every /v1 route
        return self
