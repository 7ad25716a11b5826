"""One live frame: ask serving for predictions and say plainly what happened.

The answer is always one JSON message for the page, never an exception, so a live page keeps
running through a missing model, a serving restart or a corrupt frame.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from chimp.frontend.clients import Backend, error_body, upstream_path
from chimp.shared.errors import DependencyUnavailableError
from chimp.shared.schemas.models import ImagePrediction


def status(state: str, message: str) -> dict[str, Any]:
    return {"type": "status", "state": state, "message": message}


async def predict_frame(
    serving: Backend, model_name: str, user_id: str, jpeg: bytes
) -> ImagePrediction | dict[str, Any]:
    """Serving's prediction for one frame, or the status message the page shows instead."""
    try:
        response = await serving.request(
            "POST",
            upstream_path("models", model_name, "predict-image"),
            params={"user": user_id},
            content=jpeg,
            headers={"content-type": "image/jpeg"},
        )
    except DependencyUnavailableError as exc:
        return status("serving_down", f"{exc.message}; predictions resume when it is back")
    if response.status_code == 404:
        return status(
            "no_model",
            "No model is in production yet: record a calibration, or upload a dataset and "
            "train one.",
        )
    if response.status_code == 503:
        return status(
            "serving_down",
            "the serving service is not ready yet: " + error_body("serving", response)[1].error,
        )
    if response.status_code in (400, 413, 415, 422):
        return status("bad_frame", error_body("serving", response)[1].error)
    if response.status_code >= 400:
        return status("error", error_body("serving", response)[1].error)
    try:
        return ImagePrediction.model_validate(response.json())
    except (ValidationError, ValueError):
        return status("error", "the serving service answered something that is not a prediction")
