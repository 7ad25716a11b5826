"""``/users/{id}``: a person's corrections, their review queue, what is kept, and deleting it all.

Every route wants the token: the web app calls them for its signed-in user (and only that user),
an operator calls them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.params import Depends
from fastapi.responses import Response

from chimp.shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    ValidationFailedError,
    error_responses,
)
from chimp.shared.schemas.users import (
    Correction,
    CorrectionReceipt,
    ReviewItem,
    ReviewLabel,
    ReviewOffer,
    UserDeletion,
    UserInfo,
    UserSettingsUpdate,
)
from chimp.training.dependencies import ActorDep, StateDep
from chimp.training.dependencies import TrainingState as State
from chimp.training.feedback import (
    check_user_id,
    count_corrections,
    feedback_dataset,
    store_correction,
)
from chimp.training.users import delete_user, describe_user, personal_model

_ERRORS = error_responses(
    BadRequestError, UnauthorizedError, ValidationFailedError, DependencyUnavailableError
)
_UPLOAD_ERRORS = error_responses(
    BadRequestError,
    UnauthorizedError,
    NotFoundError,
    PayloadTooLargeError,
    InvalidInputError,
    ValidationFailedError,
    DependencyUnavailableError,
)
_ITEM_ERRORS = error_responses(
    BadRequestError, UnauthorizedError, NotFoundError, DependencyUnavailableError
)

CropFile = Annotated[UploadFile, File(description="The face crop as the model saw it (PNG/JPEG).")]
ModelField = Annotated[str, Form(description="Registered model that answered.")]
VersionField = Annotated[
    str, Form(pattern=r"^[1-9][0-9]{0,9}$", description="Version that answered.")
]
PredictedField = Annotated[str, Form(description="The label the model gave.")]
ConfidenceField = Annotated[float, Form(ge=0.0, le=1.0, description="Its score for that label.")]


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"the face crop is larger than {limit} bytes", detail={"field": "file", "limit": limit}
        )
    if not data:
        raise InvalidInputError("file: the uploaded face crop is empty", detail={"field": "file"})
    return data


def next_step(pending: int, threshold: int, has_model: bool) -> tuple[int, str]:
    """How many corrections are still needed, and what they lead to, in words."""
    until = max(0, threshold - pending)
    what = "your model is re-trained" if has_model else "a personal model is trained for you"
    if until == 0:
        return 0, f"Enough corrections: {what} shortly."
    return until, f"{until} more and {what}."


async def _receipt(state: State, correction: Correction) -> CorrectionReceipt:
    user_id = correction.user_id
    total = await count_corrections(state.datastore, user_id)
    used = (await state.users.loop_record(user_id)).used
    threshold = state.settings.training.feedback_threshold
    pending = max(0, total - used)
    model = await personal_model(state.registry, state.settings.model_name, user_id)
    until, message = next_step(pending, threshold, model is not None)
    return CorrectionReceipt(
        correction=correction,
        dataset=feedback_dataset(user_id),
        corrections=total,
        pending=pending,
        threshold=threshold,
        until_recalibration=until,
        message=message,
    )


def router(guard: Sequence[Depends]) -> APIRouter:
    api = APIRouter(prefix="/users", tags=["users"], dependencies=list(guard))

    @api.post(
        "/{user_id}/feedback",
        operation_id="add_correction",
        status_code=status.HTTP_201_CREATED,
        responses=_UPLOAD_ERRORS,
    )
    async def add_correction(
        user_id: str,
        state: StateDep,
        file: CropFile,
        label: Annotated[str, Form(description="What the face really shows.")],
        model: ModelField,
        version: VersionField,
        predicted: PredictedField,
        confidence: ConfidenceField,
    ) -> CorrectionReceipt:
        """Store a correction with its provenance in the user's feedback dataset."""
        check_user_id(user_id)
        limit = state.settings.training.feedback_max_image_bytes
        correction = await store_correction(
            state.datastore,
            state.registry,
            user_id=user_id,
            image=await _read_limited(file, limit),
            label=label,
            model=model,
            version=version,
            predicted=predicted,
            confidence=confidence,
            max_image_bytes=limit,
        )
        return await _receipt(state, correction)

    @api.get("/{user_id}", operation_id="get_user", responses=_ERRORS)
    async def get_user(user_id: str, state: StateDep) -> UserInfo:
        """What is kept about the user: calibrations, corrections, their personal model."""
        return await describe_user(
            state.datastore,
            state.registry,
            state.users,
            model_name=state.settings.model_name,
            user_id=user_id,
            feedback_threshold=state.settings.training.feedback_threshold,
        )

    @api.delete("/{user_id}", operation_id="delete_user", responses=_ERRORS)
    async def remove_user(user_id: str, state: StateDep, actor: ActorDep) -> UserDeletion:
        """Delete the user's calibration data, corrections, personal models and Redis state."""
        return await delete_user(
            state.datastore,
            state.registry,
            state.users,
            state.store,
            state.redis,
            state.records,
            user_id,
            actor=actor,
        )

    @api.put("/{user_id}/settings", operation_id="update_user_settings", responses=_ERRORS)
    async def update_settings(user_id: str, body: UserSettingsUpdate, state: StateDep) -> UserInfo:
        check_user_id(user_id)
        await state.users.set_review_enabled(user_id, body.review_uncertain)
        return await get_user(user_id, state)

    @api.post("/{user_id}/review", operation_id="offer_review_frame", responses=_UPLOAD_ERRORS)
    async def offer_frame(
        user_id: str,
        state: StateDep,
        file: CropFile,
        model: ModelField,
        version: VersionField,
        predicted: PredictedField,
        confidence: ConfidenceField,
    ) -> ReviewOffer:
        """Keep an uncertain frame for review, if the user opted in and the caps allow."""
        check_user_id(user_id)
        limit = state.settings.training.feedback_max_image_bytes
        return await state.review.offer(
            user_id,
            image=await _read_limited(file, limit),
            model=model,
            version=version,
            predicted=predicted,
            confidence=confidence,
        )

    @api.get("/{user_id}/review", operation_id="list_review_frames", responses=_ERRORS)
    async def list_frames(user_id: str, state: StateDep) -> list[ReviewItem]:
        return await state.review.list(user_id)

    @api.get(
        "/{user_id}/review/{item_id}/image",
        operation_id="get_review_frame_image",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, **_ITEM_ERRORS},
    )
    async def frame_image(user_id: str, item_id: str, state: StateDep) -> Response:
        png = await state.review.image(user_id, item_id)
        return Response(png, media_type="image/png", headers={"cache-control": "private"})

    @api.post(
        "/{user_id}/review/{item_id}",
        operation_id="label_review_frame",
        status_code=status.HTTP_201_CREATED,
        responses=_UPLOAD_ERRORS,
    )
    async def label_frame(
        user_id: str, item_id: str, body: ReviewLabel, state: StateDep
    ) -> CorrectionReceipt:
        """Label a kept frame: it becomes a correction and leaves the queue."""
        correction = await state.review.label(user_id, item_id, body.label)
        return await _receipt(state, correction)

    @api.delete(
        "/{user_id}/review/{item_id}",
        operation_id="discard_review_frame",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_ITEM_ERRORS,
    )
    async def discard_frame(user_id: str, item_id: str, state: StateDep) -> None:
        await state.review.discard(user_id, item_id)

    return api
