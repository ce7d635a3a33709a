"""The FastAPI application factory. Nothing is created at import time: `create_app` takes the
bundle and the settings, and the lifespan loads the model and builds the explainer once."""

from __future__ import annotations

import logging
import re
import shutil
import time
import uuid
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from edge.core.bundle import Bundle
from edge.explain import Explainer

from . import errors
from .engine import Engine
from .routes import explain, health, model, predict
from .settings import ServerSettings

log = logging.getLogger("edge.app.server")


def create_app(
    bundle: Bundle,
    settings: ServerSettings,
    explainer: Explainer | None = None,
    scratch_dir: str | None = None,
    types: Bundle | None = None,
) -> FastAPI:
    """``scratch_dir``: the process's private temp dir (autograph's generated modules), removed at
    shutdown here because uvicorn re-raises SIGTERM after shutdown and atexit never runs.
    ``types``: the fracture-type bundle answering ``types=true`` on /v1/predict (None: refused)."""
    settings.check()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import edge.core.dicom  # noqa: F401  imports pydicom and silences it (its one place), before any upload

        t = time.perf_counter()
        engine = await anyio.to_thread.run_sync(lambda: Engine(bundle, settings, explainer, types))
        app.state.engine = engine
        log.warning(
            "model %s ready in %.1f s (layer %s, %d workers, queue %d, auth %s)",
            bundle.model_id,
            time.perf_counter() - t,
            engine.explainer.layer,
            settings.workers,
            settings.queue_size,
            "on" if settings.auth else "off",
        )
        try:
            yield
        finally:
            app.state.engine = None
            engine.close()
            if scratch_dir:
                shutil.rmtree(scratch_dir, ignore_errors=True)

    app = FastAPI(
        title="fracture-edge",
        version="1",
        description="Fracture classification and Grad-CAM explanations for the fracture-edge phone app. "
        "Every /v1 route needs `Authorization: Bearer <token>` unless the server runs with --no-auth.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = None
    errors.install(app)
    for r in (health.router, model.router, predict.router, explain.router):
        app.include_router(r)
    if settings.cors_origins:  # off by default: the phone app is not a browser
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.middleware("http")
    async def access_log(request: Request, call_next):
        # one line per request: id, method, path, status, time. Never bodies, names or headers.
        rid = re.sub(r"[^A-Za-z0-9._-]", "", request.headers.get("x-request-id", ""))[:64] or uuid.uuid4().hex[:12]
        t = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-ID"] = rid
        log.info(
            "%s %s %s %d %.1f ms", rid, request.method, request.url.path, response.status_code, (time.perf_counter() - t) * 1e3
        )
        return response

    return app
