"""Reading the multipart upload into memory, with limits, without Starlette's form parser
(which spools files over 1 MB to a temporary file: images must never touch the disk)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import ApiError

FORM_OVERHEAD = 64 * 1024  # boundaries, part headers and small text fields


@dataclass
class Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Upload:
    file: bytes
    fields: dict[str, str]


MAX_FIELD_BYTES = 1024  # method and target are short words: longer is an error, not silently dropped
MAX_PARTS = 8


async def read_upload(request: Request, max_bytes: int, timeout: float = 60.0) -> Upload:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(415, "unsupported_media_type", "send the image as multipart/form-data in the field 'file'")
    limit = max_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    too_big = ApiError(413, "payload_too_large", f"upload larger than {max_bytes // (1024 * 1024)} MB")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    parts: list[Part] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}
    headers: dict[bytes, bytes] = {}

    def on_part_begin():
        if len(parts) >= MAX_PARTS:
            raise ApiError(422, "invalid_request", f"too many form fields (at most {MAX_PARTS})")
        parts.append(Part())
        headers.clear()

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        headers[bytes(header["field"]).lower()] = bytes(header["value"])
        header["field"], header["value"] = bytearray(), bytearray()

    def on_headers_finished():
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        parts[-1].name = disp.get(b"name", b"").decode("utf-8", "replace")
        fn = disp.get(b"filename")
        parts[-1].filename = fn.decode("utf-8", "replace") if fn is not None else None

    def on_part_data(data, start, end):
        part = parts[-1]
        part.data += data[start:end]
        if part.name != "file" and len(part.data) > MAX_FIELD_BYTES:
            raise ApiError(422, "invalid_request", f"form field '{part.name[:40]}' longer than {MAX_FIELD_BYTES} bytes")

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    received = 0
    try:
        with anyio.fail_after(timeout):  # a stalled or trickling upload gives its memory back
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise too_big
                parser.write(chunk)
        parser.finalize()
    except ApiError:
        raise
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"upload not received within {timeout:g} s") from None
    except Exception:  # python-multipart's parse errors: the body is not valid multipart
        raise ApiError(422, "invalid_request", "malformed multipart body") from None
    files = [p for p in parts if p.name == "file"]
    if not files:
        raise ApiError(422, "missing_file", "no 'file' field in the form")
    if len(files[0].data) > max_bytes:
        raise too_big
    fields = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.name != "file"}
    return Upload(bytes(files[0].data), fields)


async def run_upload_job(request: Request, engine: Any, settings: Any, job: Callable[[Upload], tuple]) -> dict:
    """The shape of every upload route: a queue slot taken before the body is read (a full queue costs
    the server nothing), the upload read with its limits, ``job(upload) -> (engine_fn, *args)`` run on the
    engine, the slot released on any failure, and the route's total time added."""
    t0 = time.perf_counter()
    slot = engine.reserve()
    try:
        upload = await read_upload(request, settings.max_upload_bytes, settings.body_timeout)
        fn, *args = job(upload)
        out = await engine.run(slot, fn, *args)
    finally:
        if not slot.handed_off:
            slot.release()
    out["timings_ms"]["total"] = (time.perf_counter() - t0) * 1e3
    return out
