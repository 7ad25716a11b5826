"""A person's data: corrections they gave, their personal model, and the loop acting on them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from chimp.shared.schemas.base import StrictModel


class Correction(BaseModel):
    """One correction: what the model said, what the person says it is, and where it came from."""

    id: str
    user_id: str
    label: str = Field(description="The label the person gave.")
    model: str = Field(description="Registered model that answered.")
    version: str = Field(description="Version of that model that answered.")
    predicted: str = Field(description="The label the model gave.")
    confidence: float = Field(ge=0.0, le=1.0, description="The model's score for `predicted`.")
    at: datetime = Field(description="When the correction was stored.")
    image: str = Field(description="Path of the face crop inside the feedback dataset.")
    source: Literal["live", "review"] = "live"


class CorrectionReceipt(BaseModel):
    """What a stored correction leads to."""

    correction: Correction
    dataset: str = Field(description="The user's feedback dataset the correction went into.")
    corrections: int = Field(description="Corrections this user has given in all.")
    pending: int = Field(description="Corrections not yet used by a re-calibration.")
    threshold: int = Field(description="Pending corrections that start a re-calibration.")
    until_recalibration: int = Field(description="Corrections still needed to start one.")
    message: str = Field(description="What happens next, in words.")


class PersonalModel(BaseModel):
    model: str
    version: str
    base_version: str | None = Field(
        description="The production version it was fine-tuned from (None: trained from scratch)."
    )


class UserInfo(BaseModel):
    user_id: str
    calibration_datasets: list[str]
    corrections: int
    pending_corrections: int = Field(description="Corrections no re-calibration used yet.")
    feedback_threshold: int
    personal_model: PersonalModel | None
    review_uncertain: bool = Field(description="Whether uncertain frames are kept for review.")


class UserDeletion(BaseModel):
    """What ``DELETE /users/{id}`` removed."""

    user_id: str
    datasets: list[str]
    model_versions: list[str] = Field(description="'<model>:<version>' of each removed version.")
    redis_keys: int
    tasks: int


class UserSettingsUpdate(StrictModel):
    review_uncertain: bool = Field(
        description="Keep frames the model is unsure about for the person to label later."
    )


class ReviewItem(BaseModel):
    id: str
    model: str
    version: str
    predicted: str
    confidence: float
    at: datetime


class ReviewOffer(BaseModel):
    """Whether an uncertain frame was kept, and why not when it was not."""

    kept: bool
    reason: str
    item: ReviewItem | None = None


class ReviewLabel(StrictModel):
    label: str = Field(description="The label the person gives the kept frame.")


class LoopEntry(BaseModel):
    """Something the continual loop will start, is running, or waits to retry."""

    kind: Literal["recalibration", "shared-retraining"]
    user_id: str | None = None
    state: Literal["waiting", "ready", "running", "backoff"]
    reason: str
    task_id: str | None = None
    retry_at: datetime | None = None


class LoopStatus(BaseModel):
    interval_s: float
    feedback_threshold: int
    shared_feedback_threshold: int
    max_recalibrations: int
    last_run_at: datetime | None
    entries: list[LoopEntry]
