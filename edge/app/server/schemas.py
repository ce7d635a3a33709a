"""Response shapes (fixed: the Android client is coded to them). Used for the OpenAPI docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    id: str
    sha256: str


class Prediction(BaseModel):
    model: ModelRef
    task: str = Field(description="binary | multiclass")
    label: str = Field(description="binary: decided by the threshold; multiclass: argmax")
    probabilities: dict[str, float]
    positive_probability: float | None = Field(description="binary: P(positive_label); multiclass: null")
    threshold: float | None
    decision: bool | None = Field(description="binary: positive_probability >= threshold; multiclass: null")
    timings_ms: dict[str, float] = Field(description="decode, inference and total (plus queue, preprocess)")


class FractureType(BaseModel):
    model: ModelRef
    label: str = Field(description="the most probable type")
    probabilities: dict[str, float]
    top3: list[str]
    cv_top1: float | None = Field(description="top-1 accuracy measured in grouped cross-validation")
    cv_top3: float | None
    cv_macro_f1: float | None
    weak: bool = Field(description="true: the measured accuracy makes this a guess, not a finding; show it so")
    accuracy: str = Field(description="the sentence to show with the type (measured accuracy, chance level)")


class PredictionWithType(Prediction):
    fracture_type: FractureType


class Heatmap(BaseModel):
    method: str
    target_label: str
    grid: list[list[float]] = Field(description="0..1, row-major, covering the original image (no letterbox padding)")
    grid_shape: list[int]
    png_base64: str | None = Field(
        description="overlay PNG with class and probability written on it; null when the request says overlay=false"
    )


class Explanation(Prediction):
    heatmap: Heatmap


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 413, 415, 422, 503)}
