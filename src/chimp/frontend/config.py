"""Settings of the web app (``CHIMP_FRONTEND__*``)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from chimp.shared.schemas.models import EMOTIONS
from chimp.shared.settings import ChimpSettings, Section

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class FrontendConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=5252, ge=1, le=65535)
    training_url: str = "http://127.0.0.1:5253"
    serving_url: str = "http://127.0.0.1:5254"
    request_timeout_s: float = Field(default=30.0, gt=0)
    upload_timeout_s: float = Field(
        default=600.0, gt=0, description="Dataset uploads stream through us; allow slow links."
    )
    max_fps: float = Field(
        default=8.0, gt=0, le=60, description="Frames per second a live page may send."
    )
    jpeg_quality: float = Field(default=0.8, gt=0, le=1)
    max_frame_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    emotions: list[str] = Field(default_factory=lambda: list(EMOTIONS), min_length=1)
    calibration_plugin: str = "emotion_recognition"
    calibration_dataset_key: str = "train"
    calibration_seconds: float = Field(default=3.0, gt=0, le=30)
    calibration_frames: int = Field(default=12, ge=1, le=100)
    calibration_countdown: int = Field(default=3, ge=0, le=10, description="Seconds before each.")
    calibration_arguments: dict[str, int | float | str | bool] = Field(
        default_factory=lambda: dict[str, int | float | str | bool](mode="calibrate", epochs=8),
        description="Plugin arguments of a calibration run (fine-tunes production when any).",
    )
    correction_crop_margin: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Border around a corrected face; keep it equal to "
        "CHIMP_SERVING__DETECTOR__CROP_MARGIN.",
    )
    review_below: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Top score under which a frame is offered for review (users who opted in).",
    )
    review_min_gap_s: float = Field(
        default=10.0, ge=0.0, description="Least time between two frames offered for review."
    )
    users: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="username -> password hash (chimp-frontend hash-password). Sign-in is on "
        "when any user is configured.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs session cookies; a random one per process when unset.",
    )
    session_max_age_s: int = Field(default=12 * 3600, gt=0)
    secure_cookies: bool = Field(
        default=False, description="Mark cookies Secure (set when served over HTTPS)."
    )

    @field_validator("users")
    @classmethod
    def _usernames(cls, users: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in users:
            if not re.match(USERNAME_PATTERN, name):
                raise ValueError(f"user name {name!r} must match {USERNAME_PATTERN}")
        return users

    @property
    def sign_in_enabled(self) -> bool:
        return bool(self.users)


class FrontendSettings(ChimpSettings):
    frontend: FrontendConfig = FrontendConfig()
