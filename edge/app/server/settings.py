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

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def auth(self) -> bool:
        return not self.no_auth

    def check(self) -> ServerSettings:
        if self.no_auth:
            if not is_loopback(self.host):
                raise EdgeError(f"--no-auth is refused on {self.host}: it would expose the model without a token",
                                hint="bind to 127.0.0.1, or set --token / EDGE_API_TOKEN")
        elif not self.token:
            raise EdgeError("no API token", hint=f"pass --token T or set {TOKEN_ENV} (or --no-auth on 127.0.0.1 for local use)")
        elif len(self.token) < 8:
            raise EdgeError("the API token is too short (at least 8 characters)")
        if self.workers < 1 or self.queue_size < 0:
            raise EdgeError("--workers must be at least 1 and --queue-size at least 0")
        if self.max_upload_mb <= 0 or self.max_pixels <= 0:
            raise EdgeError("--max-upload-mb and --max-pixels must be positive")
        if "*" in self.cors_origins and self.auth:
            pass  # allowed: the bearer token still guards every /v1 route
        return self
