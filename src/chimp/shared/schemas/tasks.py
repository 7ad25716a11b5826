"""Training task contracts: what is submitted, what status looks like."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from chimp.shared.schemas.base import StrictModel


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED}


class TaskRunRequest(StrictModel):
    arguments: dict[str, Any] = Field(default_factory=dict)
    datasets: dict[str, str] = Field(
        default_factory=dict, description="Plugin dataset key -> stored dataset name."
    )
    user_id: str | None = Field(
        default=None, description="Set for a per-user calibration run (alias user-<id>)."
    )
    promote: bool = Field(
        default=True,
        description="Promote the new version to production if the evaluation gate passes "
        "(false: it never replaces production, whatever the gate says).",
    )


class TaskInfo(BaseModel):
    task_id: str
    plugin: str
    status: TaskStatus
    progress: float = Field(ge=0.0, le=1.0)
    message: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    datasets: dict[str, str] = Field(default_factory=dict)
    user_id: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TaskPoll(BaseModel):
    """The original system's poll shape."""

    ready: bool
    successful: bool
    value: Any = None
