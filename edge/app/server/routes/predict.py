"""POST /v1/predict: probabilities, label and threshold decision for one image."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from ..deps import Authorized, EngineDep, SettingsDep
from ..schemas import ERRORS, Prediction
from ..upload import read_upload
from .form import multipart_body

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[Authorized])


@router.post(
    "/predict",
    response_model=Prediction,
    responses=ERRORS,
    openapi_extra=multipart_body(False),
    summary="Classify one radiograph",
)
async def predict(request: Request, engine: EngineDep, settings: SettingsDep) -> dict:
    t0 = time.perf_counter()
    slot = engine.reserve()  # before the body is read: a full queue costs the server nothing
    try:
        upload = await read_upload(request, settings.max_upload_bytes, settings.body_timeout)
        out = await engine.run(slot, engine.predict_job, upload.file)
    finally:
        if not slot.handed_off:
            slot.release()
    out["timings_ms"]["total"] = (time.perf_counter() - t0) * 1e3
    return out
