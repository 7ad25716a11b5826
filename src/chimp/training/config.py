"""Settings of the training service (API and worker)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from chimp.shared.settings import ChimpSettings, Section


class TrainingConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=5253, gt=0, lt=65536)
    plugin_dir: Path | None = Field(
        default=None, description="Folder of extra plugins: each .py file or package is loaded."
    )
    queue_name: str = Field(default="chimp:training", description="arq queue of training jobs.")
    key_prefix: str = Field(default="chimp:training", description="Redis key prefix of task state.")
    task_timeout_s: float = Field(default=6 * 3600, gt=0, description="Wall-clock limit per task.")
    cancel_grace_s: float = Field(
        default=3.0, ge=0, description="How long a cancelled run may clean up before it is killed."
    )
    poll_interval_s: float = Field(
        default=0.5, gt=0, description="How often the worker checks for a cancel request."
    )
    max_jobs: int = Field(default=1, gt=0, description="Concurrent trainings per worker.")
    lease_s: float = Field(
        default=60.0,
        gt=0,
        description="A running task whose worker has not renewed its lease for this long "
        "(the worker was killed or lost Redis) is recorded as failed.",
    )
    task_ttl_s: int = Field(
        default=30 * 24 * 3600, gt=0, description="How long finished task records are kept."
    )
    alias_check_interval_s: int = Field(
        default=20,
        ge=1,
        le=60,
        description="How often the worker looks for alias moves made outside CHIMP (MLflow UI).",
    )
    tmp_dir: Path | None = Field(
        default=None, description="Where per-task temp folders go; defaults to the system temp."
    )
    loop_interval_s: float = Field(
        default=60.0, gt=0, description="How often the continual loop looks for work to start."
    )
    feedback_threshold: int = Field(
        default=10, gt=0, description="New corrections of a user that start a re-calibration."
    )
    shared_feedback_threshold: int = Field(
        default=200,
        gt=0,
        description="New corrections across all users that start a shared retraining.",
    )
    max_recalibrations: int = Field(
        default=2, gt=0, description="Personal re-calibrations the loop runs at once (K)."
    )
    replay_images: int = Field(
        default=200,
        ge=0,
        description="Shared training images mixed into each calibration (limits forgetting).",
    )
    forgetting_bound: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Most accuracy a new personal model may lose on shared evaluation data.",
    )
    loop_retry_s: float = Field(
        default=300.0, gt=0, description="First wait before a failed loop run is tried again."
    )
    loop_plugin: str = Field(
        default="emotion_recognition",
        description="Plugin the loop re-calibrates and retrains with.",
    )
    recalibration_arguments: dict[str, int | float | str | bool] = Field(
        default_factory=lambda: dict[str, int | float | str | bool](mode="calibrate", epochs=8),
        description="Plugin arguments of a re-calibration the loop starts.",
    )
    retraining_arguments: dict[str, int | float | str | bool] = Field(
        default_factory=lambda: dict[str, int | float | str | bool](mode="train", epochs=10),
        description="Plugin arguments of a shared retraining the loop starts.",
    )
    feedback_max_image_bytes: int = Field(
        default=2 * 1024 * 1024, gt=0, description="Largest face crop a correction may carry."
    )
    review_per_hour: int = Field(
        default=20, ge=0, description="Uncertain frames kept per user per hour (when opted in)."
    )
    review_max_items: int = Field(
        default=50, gt=0, description="Most frames a user's review queue holds."
    )
    review_ttl_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="How long an unreviewed frame is kept."
    )


class TrainingSettings(ChimpSettings):
    training: TrainingConfig = TrainingConfig()
