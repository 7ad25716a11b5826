"""``/api/me``: the signed-in person's own data (corrections, review queue, deleting it all).

The user id always comes from the session, never from the request: there is no way to name
another person here. Everything is the training API's ``/users/{id}`` contract passed through.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from chimp.frontend.clients import passthrough, upstream_path
from chimp.frontend.dependencies import BackendsDep, UserIdDep
from chimp.shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    NotFoundError,
    ValidationFailedError,
    error_responses,
)
from chimp.shared.schemas.base import StrictModel

router = APIRouter(prefix="/api/me", tags=["me"])

_UPSTREAM = error_responses(
    BadRequestError, DependencyUnavailableError, NotFoundError, ValidationFailedError
)


class ReviewSetting(StrictModel):
    review_uncertain: bool


class ReviewLabel(StrictModel):
    label: str


@router.get("", operation_id="get_my_data", responses=_UPSTREAM)
async def get_me(backends: BackendsDep, user_id: UserIdDep) -> Response:
    """What is kept about you: calibrations, corrections, your personal model."""
    response = await backends.training.request("GET", upstream_path("users", user_id))
    return passthrough("training", response)


@router.delete("", operation_id="delete_my_data", responses=_UPSTREAM)
async def delete_me(backends: BackendsDep, user_id: UserIdDep) -> Response:
    """Delete your calibration frames, corrections and personal models."""
    response = await backends.training.request(
        "DELETE", upstream_path("users", user_id), headers={"x-chimp-actor": user_id}
    )
    return passthrough("training", response)


@router.put("/settings", operation_id="update_my_settings", responses=_UPSTREAM)
async def update_settings(
    body: ReviewSetting, backends: BackendsDep, user_id: UserIdDep
) -> Response:
    response = await backends.training.request(
        "PUT", upstream_path("users", user_id, "settings"), json=body.model_dump()
    )
    return passthrough("training", response)


@router.get("/review", operation_id="list_my_review_frames", responses=_UPSTREAM)
async def list_review(backends: BackendsDep, user_id: UserIdDep) -> Response:
    response = await backends.training.request("GET", upstream_path("users", user_id, "review"))
    return passthrough("training", response)


@router.get("/review/{item_id}/image", operation_id="get_my_review_image", responses=_UPSTREAM)
async def review_image(item_id: str, backends: BackendsDep, user_id: UserIdDep) -> Response:
    response = await backends.training.request(
        "GET", upstream_path("users", user_id, "review", item_id, "image")
    )
    answer = passthrough("training", response)
    answer.headers["cache-control"] = "private, no-store"
    return answer


@router.post("/review/{item_id}", operation_id="label_my_review_frame", responses=_UPSTREAM)
async def label_review(
    item_id: str, body: ReviewLabel, backends: BackendsDep, user_id: UserIdDep
) -> Response:
    response = await backends.training.request(
        "POST", upstream_path("users", user_id, "review", item_id), json=body.model_dump()
    )
    return passthrough("training", response)


@router.delete("/review/{item_id}", operation_id="discard_my_review_frame", responses=_UPSTREAM)
async def discard_review(item_id: str, backends: BackendsDep, user_id: UserIdDep) -> Response:
    response = await backends.training.request(
        "DELETE", upstream_path("users", user_id, "review", item_id)
    )
    return passthrough("training", response)
