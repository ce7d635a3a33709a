"""JSON errors: {"error": {"code": "...", "message": "..."}} for every failure, never a 500 for
bad input. Messages name the problem, never the request's content."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.core.errors import ImageReadError

log = logging.getLogger("edge.app.server")

HTTP_CODES = {
    400: "bad_request",
    408: "request_timeout",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


_ADDRESS = re.compile(r" ?(object )?at 0x[0-9a-fA-F]+")


def error_body(code: str, message: str) -> dict:
    # repr()s of Python objects carry memory addresses (ASLR hints): never send them
    return {"error": {"code": code, "message": _ADDRESS.sub("", message)}}


def from_image_error(e: ImageReadError) -> ApiError:
    """Decoder verdicts -> HTTP: too many pixels is 413, everything else about the bytes 422."""
    msg = e.message
    if "too large" in msg:
        return ApiError(413, "image_too_large", msg)
    if msg.startswith("not a PNG"):
        return ApiError(415, "unsupported_media_type", msg)
    if msg == "empty file":
        return ApiError(422, "empty_upload", "the uploaded file is empty")
    return ApiError(422, "bad_image", msg)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, e: ApiError):
        return JSONResponse(error_body(e.code, e.message), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        code = HTTP_CODES.get(e.status_code, "error")
        msg = e.detail if isinstance(e.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, msg), status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse(error_body("invalid_request", f"{where}: {first.get('msg', 'invalid request')}"), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):  # a bug, not bad input: log the type only
        log.error("unhandled %s on %s", type(e).__name__, request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)
