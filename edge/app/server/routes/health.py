"""Liveness and readiness (no auth: load balancers and the phone's connectivity check use them)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..errors import error_body

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The model is loaded and its explainer built")
def readyz(request: Request):
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        return JSONResponse(error_body("not_ready", "the model is still loading"), status_code=503)
    return {"status": "ready", "model": {"id": engine.bundle.model_id, "sha256": engine.bundle.sha256}}
