"""``POST /models/{name}/predict-image``: an image in, faces with emotion scores out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from chimp.serving.dependencies import SelectorDep, StateDep
from chimp.serving.routes.body import read_image_upload
from chimp.serving.schemas import PredictMode
from chimp.shared.errors import (
    BadRequestError,
    ConflictError,
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    error_responses,
)
from chimp.shared.schemas.models import ImagePrediction

_IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

router = APIRouter(tags=["images"])


@router.post(
    "/models/{name}/predict-image",
    operation_id="predict_image",
    summary="Faces in an image with per-label scores",
    openapi_extra=_IMAGE_BODY,
    responses=error_responses(
        BadRequestError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        InvalidInputError,
        DependencyUnavailableError,
    ),
)
async def predict_image(
    name: str,
    request: Request,
    state: StateDep,
    selector: SelectorDep,
    mode: Annotated[
        PredictMode | None,
        Query(
            description="faces: detect faces and score each; whole: score the whole image. "
            "Default: faces for face-classification models, whole otherwise."
        ),
    ] = None,
) -> ImagePrediction:
    """JPEG/PNG (multipart ``file`` or a raw body) -> faces, each with box, scores and top label.

    ``model`` in the answer names the version that answered.
    """
    data = await read_image_upload(request, state.settings.serving.max_upload_bytes)
    resolved = await state.manager.resolve(name, selector)
    prediction = await state.pipeline.predict(resolved, data, mode)
    state.metrics.count_labels(name, resolved.model.version, [f.label for f in prediction.faces])
    state.recorder.record_image(resolved.model.name, resolved.model.version, prediction.faces)
    return prediction
