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


class TrainingSettings(ChimpSettings):
    training: TrainingConfig = TrainingConfig()
