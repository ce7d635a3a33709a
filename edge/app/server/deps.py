"""Dependencies as Annotated aliases (the routes declare what they need, nothing global)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .engine import Engine
from .errors import ApiError
from .settings import ServerSettings

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <token> (edge serve --token / EDGE_API_TOKEN)")


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise ApiError(503, "not_ready", "the model is still loading")
    return engine


SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]


def require_token(settings: SettingsDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    if not settings.auth:
        return
    # digests first: compare_digest then sees equal lengths, so timing reveals neither content nor length
    given = hashlib.sha256((creds.credentials if creds else "").encode()).digest()
    expected = hashlib.sha256((settings.token or "").encode()).digest()
    if not creds or not hmac.compare_digest(given, expected):
        raise ApiError(401, "unauthorized", "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


Authorized = Depends(require_token)
