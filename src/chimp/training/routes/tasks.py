"""``/tasks``: run a plugin, follow it, list, cancel, and the original's poll shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.params import Depends

from chimp.shared.errors import (
    BadRequestError,
    ConflictError,
    DependencyUnavailableError,
    NotFoundError,
    UnauthorizedError,
    ValidationFailedError,
    error_responses,
)
from chimp.shared.registry import user_alias
from chimp.shared.schemas.tasks import TaskInfo, TaskPoll, TaskRunRequest, TaskStatus
from chimp.training.dependencies import StateDep, StoreDep
from chimp.training.jobs import check_request, submit_task

# Redis range indexes are 64-bit; far past any real task count, and clearly a 422 beyond it.
MAX_OFFSET = 1_000_000_000


def _user_problems(request: TaskRunRequest) -> list[dict[str, Any]]:
    if request.user_id is None:
        return []
    try:
        user_alias(request.user_id)
    except BadRequestError as exc:
        return [{"loc": ["user_id"], "msg": exc.message}]
    return []


def router(guard: Sequence[Depends]) -> APIRouter:
    api = APIRouter(prefix="/tasks", tags=["tasks"])

    @api.post(
        "/run/{plugin_name}",
        operation_id="run_task",
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=list(guard),
        responses=error_responses(
            BadRequestError,
            UnauthorizedError,
            NotFoundError,
            ValidationFailedError,
            DependencyUnavailableError,
        ),
    )
    async def run_task(plugin_name: str, request: TaskRunRequest, state: StateDep) -> TaskInfo:
        """Validate arguments and datasets, then queue the task (nothing is queued on a 422)."""
        info = state.catalog.get(plugin_name).info
        stored = (
            {d.name for d in await state.datastore.list_datasets()} if request.datasets else set()
        )
        try:
            arguments = check_request(info, request, stored)
        except ValidationFailedError as exc:
            exc.detail = [*exc.detail, *_user_problems(request)]
            raise
        problems = _user_problems(request)
        if problems:
            raise ValidationFailedError("invalid task: user_id", detail=problems)
        return await submit_task(
            state.redis, state.store, state.settings.training.queue_name, info, request, arguments
        )

    @api.get("", operation_id="list_tasks", responses=error_responses(ValidationFailedError))
    async def list_tasks(
        store: StoreDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> list[TaskInfo]:
        """Tasks, newest first."""
        return await store.list(limit=limit, offset=offset)

    @api.get("/poll/{task_id}", operation_id="poll_task", responses=error_responses(NotFoundError))
    async def poll_task(task_id: str, store: StoreDep) -> TaskPoll:
        """The original system's shape: ``value`` is the result, or the error once failed."""
        task = await store.get(task_id)
        succeeded = task.status is TaskStatus.SUCCEEDED
        value: Any = task.result if succeeded else task.error
        return TaskPoll(ready=task.status.finished, successful=succeeded, value=value)

    @api.get("/{task_id}", operation_id="get_task", responses=error_responses(NotFoundError))
    async def get_task(task_id: str, store: StoreDep) -> TaskInfo:
        return await store.get(task_id)

    @api.post(
        "/{task_id}/cancel",
        operation_id="cancel_task",
        dependencies=list(guard),
        responses=error_responses(UnauthorizedError, NotFoundError, ConflictError),
    )
    async def cancel_task(task_id: str, store: StoreDep) -> TaskInfo:
        """Cancel a queued or running task; a running one stops within a few seconds."""
        cancelled = await store.finish(task_id, TaskStatus.CANCELLED, message="cancelled")
        task = await store.get(task_id)
        if not cancelled:
            raise ConflictError(
                f"task '{task_id}' already {task.status.value}",
                detail={"task_id": task_id, "status": task.status.value},
            )
        return task

    return api
