"""POST /v1/predict: probabilities, label and threshold decision for one image."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import Authorized, EngineDep, SettingsDep
from ..schemas import ERRORS, Prediction
from ..upload import run_upload_job
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
    return await run_upload_job(request, engine, settings, lambda upload: (engine.predict_job, upload.file))
