"""GET /v1/model: the bundle's model card (labels, threshold, preprocessing, metrics)."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import Authorized, EngineDep
from ..schemas import ERRORS

router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Authorized])


@router.get("/model", summary="The model card", responses={401: ERRORS[401]})
def model_card(engine: EngineDep) -> dict:
    return engine.bundle.card.to_dict()
