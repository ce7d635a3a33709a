"""POST /v1/explain: the prediction plus a heatmap (overlay PNG and the raw low-resolution grid)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from edge.core.errors import EdgeError
from edge.explain import METHODS, get_method

from ..deps import Authorized, EngineDep, SettingsDep
from ..errors import ApiError
from ..schemas import ERRORS, Explanation
from ..upload import Upload, run_upload_job
from .form import multipart_body

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[Authorized])
_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _flag(value: str, name: str) -> bool:
    try:
        return _FLAGS[value.strip().lower()]
    except KeyError:
        raise ApiError(422, "invalid_request", f"{name} must be true or false") from None


@router.post(
    "/explain",
    response_model=Explanation,
    responses=ERRORS,
    openapi_extra=multipart_body(True),
    summary="Classify one radiograph and show where the model looked",
)
async def explain(request: Request, engine: EngineDep, settings: SettingsDep) -> dict:
    def job(upload: Upload) -> tuple:
        # form fields win over the query string; both are optional
        raw = upload.fields.get("method") or request.query_params.get("method") or "gradcam"
        target = (upload.fields.get("target") or request.query_params.get("target") or "").strip() or None
        try:  # an unescaped '+' in a query string arrives as a space: 'gradcam  ' means gradcam++
            method = get_method(raw.strip("\t\r\n").replace(" ", "+")).name
        except EdgeError:
            raise ApiError(422, "invalid_request", f"method must be one of {', '.join(METHODS)}") from None
        overlay = _flag(upload.fields.get("overlay") or request.query_params.get("overlay") or "true", "overlay")
        return engine.explain_job, upload.file, method, target, overlay

    return await run_upload_job(request, engine, settings, job)
