"""Bodies of the web app's own /api routes (the rest pass the services' contracts through)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from chimp.shared.schemas.base import StrictModel


class SessionInfo(BaseModel):
    """What a page needs to know about its user and the app's settings."""

    user_id: str
    sign_in_enabled: bool
    model_name: str
    max_fps: float
    jpeg_quality: float
    emotions: list[str]
    calibration_seconds: float
    calibration_frames: int
    calibration_countdown: int
    calibration_dataset_prefix: str


class RunRequest(StrictModel):
    arguments: dict[str, Any] = Field(default_factory=dict)
    datasets: dict[str, str] = Field(default_factory=dict)
    promote: bool = Field(
        default=True, description="Promote the new version if it passes the evaluation gate."
    )


class CalibrationRequest(StrictModel):
    dataset: str = Field(description="The uploaded calibration dataset (name from /api/session).")


class AliasRequest(StrictModel):
    # Same rule as training's, so the schema says what is accepted before a round trip.
    version: str = Field(pattern=r"^[1-9][0-9]{0,9}$", description="The version to point at.")
    reason: str | None = Field(default=None, max_length=500, description="Why, for the history.")
