"""Training jobs: submitting one (API side) and running one (worker side).

A job's arq payload is a JSON :class:`TrainingJob`; the worker validates it again, because the
plugin set of the worker may differ from the API's and a queue outlives deployments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from arq.connections import ArqRedis
from pydantic import ValidationError

from chimp.shared.datastore import Datastore
from chimp.shared.errors import ChimpError, NotFoundError, ValidationFailedError
from chimp.shared.registry import ModelRegistry, RunStatus
from chimp.shared.schemas.base import StrictModel
from chimp.shared.schemas.plugins import PluginInfo, describe_validation_error
from chimp.shared.schemas.tasks import TaskInfo, TaskRunRequest, TaskStatus
from chimp.training.config import TrainingSettings
from chimp.training.personal import add_corrections, personal_datasets
from chimp.training.plugins.discovery import PluginCatalog
from chimp.training.protocol import ChildSpec
from chimp.training.records import ModelRecords
from chimp.training.supervisor import ChildLimits, ChildOutcome, run_child
from chimp.training.task_gate import TaskVersions, promote_task_versions
from chimp.training.task_store import TaskStore, utcnow

if TYPE_CHECKING:
    from chimp.training.loop import LoopDeps

logger = logging.getLogger(__name__)

JOB_FUNCTION = "run_training_task"


def serialize_job(obj: Any) -> bytes:
    return json.dumps(obj, default=str).encode()


def deserialize_job(raw: bytes) -> Any:
    return json.loads(raw)


class TrainingJob(StrictModel):
    task_id: str
    plugin: str
    arguments: dict[str, Any]
    datasets: dict[str, str]
    user_id: str | None = None
    promote: bool = True
    # Set by the continual loop: the first dataset is trained on together with every user's
    # corrections (feedback-<user> datasets).
    with_corrections: bool = False


def check_request(info: PluginInfo, request: TaskRunRequest, stored: set[str]) -> dict[str, Any]:
    """Typed arguments for ``request``, or :class:`ValidationFailedError` naming every bad field.

    ``stored`` is the set of dataset names that exist in the datastore.
    """
    problems: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {}
    try:
        arguments = info.validate_arguments(request.arguments)
    except ValidationError as exc:
        problems += describe_validation_error(exc, "arguments")
    problems += info.validate_datasets(request.datasets)
    for key, name in request.datasets.items():
        if name not in stored:
            problems.append({"loc": ["datasets", key], "msg": f"no stored dataset named '{name}'"})
    if problems:
        names = ", ".join(".".join(str(p) for p in problem["loc"]) for problem in problems)
        raise ValidationFailedError(
            f"invalid task for plugin '{info.name}': {names}", detail=problems
        )
    return arguments


async def submit_task(
    arq: ArqRedis,
    store: TaskStore,
    queue_name: str,
    info: PluginInfo,
    request: TaskRunRequest,
    arguments: dict[str, Any],
    *,
    with_corrections: bool = False,
) -> TaskInfo:
    """Record a queued task and enqueue its job; ``arguments`` are already validated."""
    task = TaskInfo(
        task_id=uuid.uuid4().hex,
        plugin=info.name,
        status=TaskStatus.QUEUED,
        progress=0.0,
        message="queued",
        arguments=arguments,
        datasets=request.datasets,
        user_id=request.user_id,
        created_at=utcnow(),
    )
    await store.create(task)
    job = TrainingJob(
        task_id=task.task_id,
        plugin=info.name,
        arguments=arguments,
        datasets=request.datasets,
        user_id=request.user_id,
        promote=request.promote,
        with_corrections=with_corrections,
    )
    await arq.enqueue_job(
        JOB_FUNCTION, job.model_dump(mode="json"), _job_id=task.task_id, _queue_name=queue_name
    )
    return task


@dataclass
class WorkerState:
    settings: TrainingSettings
    store: TaskStore
    datastore: Datastore
    catalog: PluginCatalog
    registry: ModelRegistry
    records: ModelRecords


class WorkerContext(TypedDict, total=False):
    """arq's ``ctx``: what arq puts there plus our :class:`WorkerState`."""

    redis: ArqRedis
    job_id: str
    job_try: int
    settings: TrainingSettings
    state: WorkerState
    loop: LoopDeps


async def _fail(store: TaskStore, task_id: str, error: str) -> str:
    logger.warning("task %s failed: %s", task_id, error)
    await store.finish(task_id, TaskStatus.FAILED, message="failed", error=error)
    return TaskStatus.FAILED.value


def _check_job(state: WorkerState, job: TrainingJob) -> str | None:
    """Why the worker cannot run ``job`` (its own plugin set may differ), or None."""
    try:
        info = state.catalog.get(job.plugin).info
        info.validate_arguments(job.arguments)
    except ChimpError as exc:
        return exc.message
    except ValidationError as exc:
        return f"invalid arguments: {describe_validation_error(exc, 'arguments')}"
    problems = info.validate_datasets(job.datasets)
    return f"invalid datasets: {problems}" if problems else None


async def _download(state: WorkerState, job: TrainingJob, root: Path) -> dict[str, Path]:
    if job.user_id is not None and job.datasets:
        # A personal model trains on all its person's data plus a replay sample.
        await state.store.set_progress(job.task_id, 0.0, f"gathering the data of {job.user_id}")
        paths, _ = await personal_datasets(
            state.settings,
            state.datastore,
            state.registry,
            user_id=job.user_id,
            arguments=job.arguments,
            datasets=job.datasets,
            work=root,
        )
        return paths
    paths = {}
    for key, name in job.datasets.items():
        await state.store.set_progress(job.task_id, 0.0, f"downloading dataset '{name}'")
        paths[key] = await state.datastore.download_dataset(name, root / key)
    if job.with_corrections and paths:
        await state.store.set_progress(job.task_id, 0.0, "adding every user's corrections")
        await add_corrections(state.datastore, next(iter(paths.values())), root / "corrections")
    return paths


async def run_training_task(ctx: WorkerContext, payload: dict[str, Any]) -> str:
    """The arq job: run one task's plugin in a child process and record the outcome."""
    state = ctx["state"]
    store = state.store
    try:
        job = TrainingJob.model_validate(payload)
    except ValidationError as exc:
        task_id = payload.get("task_id") if isinstance(payload, dict) else None
        if isinstance(task_id, str):
            return await _fail(store, task_id, f"malformed job payload: {exc.errors()}")
        logger.error("dropping malformed job payload: %s", exc)
        return "malformed"
    try:
        task = await store.get(job.task_id)
    except NotFoundError:
        logger.warning("job for unknown task %s dropped", job.task_id)
        return "unknown task"
    if task.status.finished:
        return task.status.value  # cancelled while it was queued
    problem = _check_job(state, job)
    if problem is not None:
        return await _fail(store, job.task_id, problem)
    if not await store.mark_running(job.task_id):
        await store.release_lease(job.task_id)
        return TaskStatus.CANCELLED.value
    heartbeat = asyncio.create_task(_keep_lease(store, job.task_id))
    try:
        return await _run_leased(state, job)
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        with contextlib.suppress(Exception):
            await asyncio.shield(store.release_lease(job.task_id))


async def _keep_lease(store: TaskStore, task_id: str) -> None:
    """Renew the task's lease while it runs; a Redis outage is ridden out, not fatal."""
    while True:
        await asyncio.sleep(store.lease_s / 4)
        try:
            await store.renew_lease(task_id)
        except Exception as exc:
            logger.warning("could not renew the lease of task %s: %s", task_id, exc)


TASK_DIR_PREFIX = "chimp-task-"


async def sweep_task_dirs(store: TaskStore, root: Path | None) -> None:
    """Remove task folders left by a worker that was killed: those whose task has no lease."""
    base = Path(root or tempfile.gettempdir())
    for folder in await asyncio.to_thread(lambda: list(base.glob(f"{TASK_DIR_PREFIX}*"))):
        task_id = folder.name.removeprefix(TASK_DIR_PREFIX).split("-", 1)[0]
        if task_id and not await store.has_lease(task_id):
            logger.info("removing %s, left by a worker that stopped", folder)
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)


async def _run_leased(state: WorkerState, job: TrainingJob) -> str:
    store = state.store
    config = state.settings.training
    tmp = Path(tempfile.mkdtemp(prefix=f"{TASK_DIR_PREFIX}{job.task_id}-", dir=config.tmp_dir))
    try:
        try:
            datasets = await _download(state, job, tmp / "datasets")
        except ChimpError as exc:
            return await _fail(store, job.task_id, f"cannot fetch datasets: {exc.message}")
        spec = ChildSpec(
            task_id=job.task_id,
            plugin=job.plugin,
            arguments=job.arguments,
            datasets=datasets,
            dataset_names=job.datasets,
            tmp_dir=tmp,
            plugin_dir=config.plugin_dir,
            tracking_uri=state.settings.mlflow.tracking_uri,
            experiment=state.settings.mlflow.experiment,
            default_model_name=state.settings.model_name,
            user_id=job.user_id,
            promote=job.promote,
            log_level=state.settings.log_level,
        )
        limits = ChildLimits(config.task_timeout_s, config.cancel_grace_s, config.poll_interval_s)
        outcome = await run_child(
            spec,
            limits,
            on_progress=lambda f, m: store.set_progress(job.task_id, f, m),
            is_cancelled=lambda: store.is_cancelled(job.task_id),
        )
        if outcome.status is TaskStatus.SUCCEEDED and outcome.result:
            outcome = await _promote(state, job, datasets, tmp, outcome)
    except asyncio.CancelledError:
        await asyncio.shield(_fail(store, job.task_id, "the worker stopped while the task ran"))
        raise
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True))
    if outcome.run_id is not None and outcome.status is not TaskStatus.SUCCEEDED:
        await _end_run(state.settings, outcome.run_id, outcome.status)
    return await _record(store, job.task_id, outcome)


async def _promote(
    state: WorkerState,
    job: TrainingJob,
    datasets: dict[str, Path],
    tmp: Path,
    outcome: ChildOutcome,
) -> ChildOutcome:
    """Put the task's new versions through the gate (calibrations: their user alias only)."""
    assert outcome.result is not None
    task = TaskVersions(
        task_id=job.task_id,
        plugin=job.plugin,
        user_id=job.user_id,
        promote=job.promote,
        datasets=datasets,
        dataset_names=job.datasets,
        forgetting_bound=state.settings.training.forgetting_bound,
    )
    try:
        result = await promote_task_versions(
            state.registry,
            state.records,
            state.datastore,
            state.catalog,
            task,
            outcome.result,
            tmp,
            lambda f, m: state.store.set_progress(job.task_id, f, m),
        )
    except ChimpError as exc:
        error = f"the version was registered but the evaluation gate failed: {exc.message}"
        return ChildOutcome(TaskStatus.FAILED, error=error, run_id=outcome.run_id)
    except Exception as exc:
        logger.exception("evaluation gate of task %s failed", job.task_id)
        error = f"the version was registered but the evaluation gate failed: {exc!r}"
        return ChildOutcome(TaskStatus.FAILED, error=error, run_id=outcome.run_id)
    return ChildOutcome(outcome.status, result=result, run_id=outcome.run_id)


async def _end_run(settings: TrainingSettings, run_id: str, status: TaskStatus) -> None:
    """Mark the MLflow run of a task that did not succeed, FAILED or KILLED.

    The child ends its own run when it stops cleanly; this covers a child that was killed
    (ignored a cancel, ran past its time limit, crashed) and left the run RUNNING.
    """
    mark: RunStatus = "KILLED" if status is TaskStatus.CANCELLED else "FAILED"

    def end_run() -> None:
        # Building the MLflow client is blocking work too, and may fail like the call itself.
        registry = ModelRegistry(
            settings.mlflow.tracking_uri, experiment=settings.mlflow.experiment
        )
        registry.end_run(run_id, mark)

    try:
        await asyncio.to_thread(end_run)
    except Exception:
        logger.warning("could not mark MLflow run %s %s", run_id, mark, exc_info=True)


async def _record(store: TaskStore, task_id: str, outcome: ChildOutcome) -> str:
    if outcome.status is TaskStatus.SUCCEEDED:
        await store.finish(task_id, outcome.status, message="done", result=outcome.result)
    elif outcome.status is TaskStatus.CANCELLED:
        await store.finish(task_id, outcome.status, message="cancelled")
    else:
        await _fail(store, task_id, outcome.error or "failed")
    return outcome.status.value
