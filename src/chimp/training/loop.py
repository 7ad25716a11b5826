"""The continual loop: what it starts, when, and why. An arq cron job runs :func:`run_loop`.

Every ``loop_interval_s`` it looks at each person and at the shared model:

- a person with ``feedback_threshold`` corrections no re-calibration used yet, or whose
  personal model was fine-tuned from a production version that is no longer production, gets
  a re-calibration (a calibration task on all their data plus replay; the personal gate decides
  whether it replaces the model they have). At most ``max_recalibrations`` run at once and at
  most one per person;
- ``shared_feedback_threshold`` new corrections across everyone start a shared retraining
  (production's dataset plus every correction) that goes through the shared gate.

A run that fails is retried after ``loop_retry_s``, doubling per failure (up to a day), never
in a tight loop. :func:`plan` answers ``GET /loop`` without starting anything.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis

from chimp.shared.datastore import Datastore
from chimp.shared.errors import ChimpError, NotFoundError
from chimp.shared.registry import PRODUCTION, AsyncModelRegistry
from chimp.shared.schemas.models import ModelVersionInfo
from chimp.shared.schemas.tasks import TaskRunRequest, TaskStatus
from chimp.shared.schemas.users import LoopEntry, LoopStatus
from chimp.training.config import TrainingSettings
from chimp.training.feedback import count_corrections, owner_of
from chimp.training.jobs import check_request, submit_task
from chimp.training.personal import user_datasets
from chimp.training.plugins.discovery import PluginCatalog
from chimp.training.task_store import TaskStore
from chimp.training.user_store import LoopRecord, UserStore
from chimp.training.users import personal_model

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 24 * 3600
LOCK_TTL_S = 120
SHARED = "shared"


@dataclass
class LoopDeps:
    settings: TrainingSettings
    arq: ArqRedis
    store: TaskStore
    users: UserStore
    datastore: Datastore
    registry: AsyncModelRegistry
    catalog: PluginCatalog


@dataclass
class Candidate:
    """One target the loop looked at, and what it found."""

    user_id: str | None
    record: LoopRecord
    corrections: int
    entry: LoopEntry
    stale_for: str | None = None  # the production version a stale personal model lags behind


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


async def _settle(deps: LoopDeps, record: LoopRecord) -> bool:
    """Fold a finished run into ``record``; True while a run is still in flight."""
    if record.task_id is None:
        return False
    try:
        task = await deps.store.get(record.task_id)
    except NotFoundError:
        task = None
    if task is not None and not task.status.finished:
        return True
    if task is not None and task.status is TaskStatus.SUCCEEDED:
        record.failures, record.retry_at, record.last_error = 0, None, None
        record.used = record.started_with
    else:
        error = (task.error or task.status.value) if task else "the task vanished"
        _back_off(deps, record, error)
    record.task_id = None
    return False


def _back_off(deps: LoopDeps, record: LoopRecord, error: str) -> None:
    """One more failure: no new run before ``loop_retry_s``, doubling per failure."""
    record.failures += 1
    wait = min(MAX_BACKOFF_S, deps.settings.training.loop_retry_s * 2 ** (record.failures - 1))
    record.retry_at, record.last_error = time.time() + wait, error


async def _save(deps: LoopDeps, candidate: Candidate) -> None:
    if candidate.user_id is not None:
        await deps.users.save_loop_record(candidate.user_id, candidate.record)
    else:
        await deps.users.save_shared_record(candidate.record)


async def _production(deps: LoopDeps) -> ModelVersionInfo | None:
    try:
        return await deps.registry.resolve(deps.settings.model_name, alias=PRODUCTION)
    except NotFoundError:
        return None


async def _people(deps: LoopDeps) -> set[str]:
    """Everyone with corrections or a personal model of the application's model."""
    people = {user for d in await deps.datastore.list_datasets() if (user := owner_of(d.name))}
    try:
        aliases = await deps.registry.aliases(deps.settings.model_name)
    except NotFoundError:
        aliases = {}
    people |= {a[len("user-") :] for a in aliases if a.startswith("user-")}
    return people


async def _look_at_user(
    deps: LoopDeps, user_id: str, production: ModelVersionInfo | None
) -> Candidate:
    config = deps.settings.training
    record = await deps.users.loop_record(user_id)
    running = await _settle(deps, record)
    corrections = await count_corrections(deps.datastore, user_id)
    pending = max(0, corrections - record.used)
    candidate = Candidate(
        user_id,
        record,
        corrections,
        LoopEntry(kind="recalibration", user_id=user_id, state="waiting", reason=""),
    )
    entry = candidate.entry
    if running:
        entry.state, entry.task_id = "running", record.task_id
        entry.reason = f"re-calibrating with {record.started_with - record.used} new corrections"
        return candidate
    reasons = []
    if pending >= config.feedback_threshold:
        reasons.append(f"{pending} new corrections (threshold {config.feedback_threshold})")
    model = await personal_model(deps.registry, deps.settings.model_name, user_id)
    if (
        model is not None
        and production is not None
        and model.base_version != production.version
        and record.tried_base != production.version
    ):
        candidate.stale_for = production.version
        reasons.append(
            f"production moved to v{production.version}; personal v{model.version} was "
            f"fine-tuned from {('v' + model.base_version) if model.base_version else 'scratch'}"
        )
    if not reasons:
        entry.reason = f"{pending} of {config.feedback_threshold} corrections"
        return candidate
    entry.reason = "; ".join(reasons)
    if record.retry_at is not None and record.retry_at > time.time():
        entry.state, entry.retry_at = "backoff", _when(record.retry_at)
        entry.reason += f" (failed {record.failures}x: {record.last_error})"
    else:
        entry.state = "ready"
    return candidate


async def _look_at_shared(deps: LoopDeps, total: int) -> Candidate:
    """``total``: everyone's corrections, as counted for each person."""
    config = deps.settings.training
    record = await deps.users.shared_record()
    running = await _settle(deps, record)
    pending = max(0, total - record.used)
    entry = LoopEntry(kind="shared-retraining", state="waiting", reason="")
    candidate = Candidate(None, record, total, entry)
    if running:
        entry.state, entry.task_id = "running", record.task_id
        entry.reason = "retraining with every user's corrections"
    elif pending < config.shared_feedback_threshold:
        entry.reason = f"{pending} of {config.shared_feedback_threshold} corrections from everyone"
    elif record.retry_at is not None and record.retry_at > time.time():
        entry.state, entry.retry_at = "backoff", _when(record.retry_at)
        entry.reason = f"{pending} new corrections; failed {record.failures}x: {record.last_error}"
    else:
        entry.state = "ready"
        entry.reason = f"{pending} new corrections (threshold {config.shared_feedback_threshold})"
    return candidate


async def _survey(deps: LoopDeps) -> list[Candidate]:
    production = await _production(deps)
    people = await _people(deps)
    found = [await _look_at_user(deps, user, production) for user in sorted(people)]
    found.append(await _look_at_shared(deps, sum(c.corrections for c in found)))
    return found


async def _submit(
    deps: LoopDeps, request: TaskRunRequest, *, with_corrections: bool = False
) -> str:
    info = deps.catalog.get(deps.settings.training.loop_plugin).info
    stored = {d.name for d in await deps.datastore.list_datasets()}
    arguments = check_request(info, request, stored)
    task = await submit_task(
        deps.arq,
        deps.store,
        deps.settings.training.queue_name,
        info,
        request,
        arguments,
        with_corrections=with_corrections,
    )
    return task.task_id


async def _start_recalibration(deps: LoopDeps, candidate: Candidate) -> None:
    user_id = candidate.user_id
    assert user_id is not None
    datasets = await user_datasets(deps.datastore, user_id)
    if not datasets:
        candidate.entry.state = "waiting"
        candidate.entry.reason += " (but no calibration data or corrections are stored)"
        return
    request = TaskRunRequest(
        arguments={
            **deps.settings.training.recalibration_arguments,
            "model_name": deps.settings.model_name,
        },
        datasets={"train": datasets[-1]},
        user_id=user_id,
    )
    record = candidate.record
    record.task_id = await _submit(deps, request)
    record.started_with = candidate.corrections
    if candidate.stale_for is not None:
        record.tried_base = candidate.stale_for
    await deps.users.save_loop_record(user_id, record)
    candidate.entry.state, candidate.entry.task_id = "running", record.task_id
    logger.info("loop: re-calibrating %s (%s), task %s", user_id, candidate.entry.reason,
                record.task_id)  # fmt: skip


async def _start_retraining(deps: LoopDeps, candidate: Candidate) -> None:
    production = await _production(deps)
    source = production.metadata.dataset if production and production.metadata else None
    stored = {d.name for d in await deps.datastore.list_datasets()}
    if source is None or source not in stored:
        candidate.entry.state = "waiting"
        candidate.entry.reason += f" (but production's dataset {source!r} is not stored)"
        return
    request = TaskRunRequest(
        arguments={
            **deps.settings.training.retraining_arguments,
            "model_name": deps.settings.model_name,
        },
        datasets={"train": source},
        promote=True,  # promoted only if the gate passes
    )
    record = candidate.record
    record.task_id = await _submit(deps, request, with_corrections=True)
    record.started_with = candidate.corrections
    await deps.users.save_shared_record(record)
    candidate.entry.state, candidate.entry.task_id = "running", record.task_id
    logger.info("loop: shared retraining, task %s", record.task_id)


async def _fail_start(deps: LoopDeps, candidate: Candidate, exc: ChimpError) -> None:
    _back_off(deps, candidate.record, exc.message)
    candidate.entry.state, candidate.entry.retry_at = "backoff", _when(candidate.record.retry_at)
    logger.warning("loop: could not start %s: %s", candidate.entry.kind, exc.message)


async def run_loop(deps: LoopDeps) -> list[LoopEntry]:
    """One pass: settle finished runs, start what is due; returns what it saw."""
    await deps.users.mark_loop_run()
    found = await _survey(deps)
    running = sum(1 for c in found if c.user_id and c.entry.state == "running")
    for candidate in found:
        user = candidate.user_id
        if candidate.entry.state != "ready":
            await _save(deps, candidate)
            continue
        key = user if user is not None else SHARED
        if user is not None and running >= deps.settings.training.max_recalibrations:
            candidate.entry.state = "waiting"
            candidate.entry.reason += (
                f" (queued: {running} re-calibrations run, at most "
                f"{deps.settings.training.max_recalibrations})"
            )
            await _save(deps, candidate)
            continue
        if not await deps.users.lock(key, LOCK_TTL_S):
            continue  # another loop run (another worker) is on it
        try:
            if user is not None:
                await _start_recalibration(deps, candidate)
                running += 1
            else:
                await _start_retraining(deps, candidate)
        except ChimpError as exc:
            await _fail_start(deps, candidate, exc)
            await _save(deps, candidate)
        finally:
            await deps.users.unlock(key)
    return [c.entry for c in found]


async def plan(deps: LoopDeps) -> LoopStatus:
    """What the loop would start now and why (nothing is started or changed)."""
    config = deps.settings.training
    entries = [c.entry for c in await _survey(deps)]
    running = sum(1 for e in entries if e.kind == "recalibration" and e.state == "running")
    for entry in entries:
        if (
            entry.kind == "recalibration"
            and entry.state == "ready"
            and (running >= config.max_recalibrations)
        ):
            entry.state = "waiting"
            entry.reason += f" (queued behind {running} running re-calibrations)"
    return LoopStatus(
        interval_s=config.loop_interval_s,
        feedback_threshold=config.feedback_threshold,
        shared_feedback_threshold=config.shared_feedback_threshold,
        max_recalibrations=config.max_recalibrations,
        last_run_at=await deps.users.last_loop_run(),
        entries=entries,
    )


def summary(entries: list[LoopEntry]) -> dict[str, Any]:
    return {
        "running": [e.model_dump(mode="json") for e in entries if e.state == "running"],
        "waiting": sum(1 for e in entries if e.state != "running"),
    }
