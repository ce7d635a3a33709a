"""Limits enforced before any route (and before authentication) runs.

uvicorn's httptools protocol has no header-size or header-count limit (h11_max_incomplete_event_size
only applies to h11), no timeout for a request whose headers or body never finish, and an unfinished
header is buffered inside the parser without any callback. This subclass counts the bytes received
while headers are incomplete (an unfinished header), counts the URL and header bytes the parser
hands over (a whole oversized header block arriving in one read, which completes within a single
feed), counts headers, and arms timers for the header phase and for a body that stops arriving.
Everything else is uvicorn's (limit_concurrency caps connections).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024  # request line + all headers
    max_headers: int = 100
    header_timeout: float = 10.0  # seconds from the first byte (or the connection) to the end of headers
    body_idle_timeout: float = 10.0  # seconds without a body byte while a body is expected


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing, so no request is dispatched."""


_TOO_LARGE = (
    b"431 Request Header Fields Too Large",
    b'{"error":{"code":"headers_too_large","message":"request headers too large or too many"}}',
)


def _reply(transport: asyncio.Transport, status: bytes, msg: bytes) -> None:
    transport.write(
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(msg)).encode() + b"\r\n\r\n" + msg
    )
    transport.close()


def bounded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kw: Any):
            super().__init__(*args, **kw)
            self._in_headers = True
            self._header_bytes = 0
            self._header_count = 0
            self._parsed_bytes = 0  # URL and headers of the current request, as parsed
            self._refused = False
            self._timer: asyncio.TimerHandle | None = None

        def _arm(self, seconds: float, handler) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(seconds, handler)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _header_timeout(self) -> None:
            self._timer = None
            if not self.transport.is_closing():
                _reply(
                    self.transport,
                    b"408 Request Timeout",
                    b'{"error":{"code":"request_timeout","message":"request headers not received in time"}}',
                )

        def _body_timeout(self) -> None:
            self._timer = None
            if not self.transport.is_closing():  # the route sees a disconnect; nothing is answered
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm(limits.header_timeout, self._header_timeout)  # a connection that never speaks

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_headers:
                self._header_bytes += len(data)
            elif self._timer is not None:  # body arriving: push the idle deadline back
                self._arm(limits.body_idle_timeout, self._body_timeout)
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._in_headers and self._header_bytes > limits.max_header_bytes:  # still unfinished
                self._disarm()
                _reply(self.transport, *_TOO_LARGE)

        def _count(self, n: int, header: bool) -> None:
            self._parsed_bytes += n
            self._header_count += header
            if self._parsed_bytes > limits.max_header_bytes or self._header_count > limits.max_headers:
                self._refused = True
                raise _HeadersTooLarge

        def send_400_response(self, msg: str) -> None:  # uvicorn's answer to any parser error
            if self._refused:
                self._disarm()
                _reply(self.transport, *_TOO_LARGE)
            else:
                super().send_400_response(msg)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers, self._header_count, self._parsed_bytes = True, 0, 0
            if self._timer is None:
                self._arm(limits.header_timeout, self._header_timeout)

        def on_url(self, url: bytes) -> None:
            self._count(len(url), False)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4, True)  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_headers, self._header_bytes = False, 0
            self._arm(limits.body_idle_timeout, self._body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._in_headers = True  # the next request's bytes count against the header budget

    return BoundedHttpToolsProtocol
