"""What the worker and its training child process say to each other.

The worker writes one :class:`ChildSpec` as JSON to the child's stdin. The child answers with
JSON lines on a private pipe (its original stdout; anything the plugin prints goes to stderr):
any number of :class:`ProgressEvent` (and one :class:`RunEvent` once the task's MLflow run is
open), then exactly one :class:`ResultEvent`,
:class:`ErrorEvent` or :class:`CancelledEvent`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from chimp.shared.schemas.base import StrictModel

# The worker tells its training child its pid: the child dies with that process (runner.py).
PARENT_PID_ENV = "CHIMP_TRAINING_WORKER_PID"


class ChildSpec(StrictModel):
    task_id: str
    plugin: str
    arguments: dict[str, Any]
    datasets: dict[str, Path]
    dataset_names: dict[str, str] = {}
    tmp_dir: Path
    plugin_dir: Path | None = None
    tracking_uri: str
    experiment: str
    default_model_name: str
    user_id: str | None = None
    promote: bool = False
    log_level: str = "INFO"


class ProgressEvent(BaseModel):
    event: Literal["progress"] = "progress"
    progress: float
    message: str = ""


class RunEvent(BaseModel):
    """The task's MLflow run is open: the worker ends it if the child is killed before it can."""

    event: Literal["run"] = "run"
    run_id: str


class ResultEvent(BaseModel):
    event: Literal["result"] = "result"
    result: dict[str, Any]


class ErrorEvent(BaseModel):
    event: Literal["error"] = "error"
    error: str


class CancelledEvent(BaseModel):
    event: Literal["cancelled"] = "cancelled"


ChildEvent = Annotated[
    ProgressEvent | RunEvent | ResultEvent | ErrorEvent | CancelledEvent,
    Field(discriminator="event"),
]
child_event_adapter: TypeAdapter[ChildEvent] = TypeAdapter(ChildEvent)
