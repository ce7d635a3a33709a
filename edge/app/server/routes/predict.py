"""POST /v1/predict: probabilities, label and threshold decision for one image."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import Authorized, EngineDep, SettingsDep
from ..schemas import ERRORS, Prediction, PredictionWithType
from ..upload import Upload, run_upload_job
from .explain import _flag
from .form import multipart_body

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[Authorized])


@router.post(
    "/predict",
    # the default answer is exactly Prediction; 'fracture_type' is added only when types=true
    response_model=PredictionWithType | Prediction,
    responses=ERRORS,
    openapi_extra=multipart_body(False, types=True),
    summary="Classify one radiograph (optionally also its fracture type, a weak guess)",
)
async def predict(request: Request, engine: EngineDep, settings: SettingsDep) -> dict:
    def job(upload: Upload) -> tuple:
        # form field wins over the query string, as for /v1/explain's options
        types = _flag(upload.fields.get("types") or request.query_params.get("types") or "false", "types")
        return engine.predict_job, upload.file, types

    return await run_upload_job(request, engine, settings, job)
