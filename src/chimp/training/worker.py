"""The arq worker that runs training tasks: ``chimp-train worker``.

:func:`create_worker` builds a worker from settings (used by the CLI and tests).
:data:`WorkerSettings` serves ``arq chimp.training.worker.WorkerSettings`` too: it builds the
very same options from ``TrainingSettings`` read from the environment when arq asks for them
(at startup, never at import), so both ways honour ``CHIMP_REDIS_URL`` and the task time limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import ItemsView
from typing import Any

import anyio
from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.worker import Function, Worker, func
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chimp.shared.datastore import open_datastore
from chimp.shared.registry import AsyncModelRegistry, ModelRegistry
from chimp.training.config import TrainingSettings
from chimp.training.external import record_all_external_moves
from chimp.training.jobs import (
    JOB_FUNCTION,
    WorkerContext,
    WorkerState,
    deserialize_job,
    run_training_task,
    serialize_job,
    sweep_task_dirs,
)
from chimp.training.loop import LoopDeps, run_loop, summary
from chimp.training.plugins.discovery import discover_plugins
from chimp.training.records import ModelRecords
from chimp.training.task_store import TaskStore
from chimp.training.user_store import UserStore

logger = logging.getLogger(__name__)

# arq's own limit must not fire before ours: the supervisor enforces task_timeout_s and
# needs time to stop the child and record the outcome.
JOB_TIMEOUT_MARGIN_S = 120
LOOP_FUNCTION = "continual_loop"
LOOP_TIMEOUT_S = 300
LOOP_REGISTRY_THREADS = 2
# A Redis restart must not end the worker: arq stops on the first failed command, so every
# command (connecting included) is retried with backoff, 0.5 s doubling up to 5 s, for about
# 90 s in all. A longer outage stops the worker with the connection error.
REDIS_RETRIES = 20
REDIS_BACKOFF = ExponentialBackoff(cap=5.0, base=0.25)


def redis_settings(url: str) -> RedisSettings:
    """arq's connection settings for ``url``, riding out a Redis restart."""
    return dataclasses.replace(
        RedisSettings.from_dsn(url),
        retry=Retry(REDIS_BACKOFF, REDIS_RETRIES),
        # OSError: redis-py retries connecting only on these, and a refused connect is one.
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OSError],
    )


async def startup(ctx: WorkerContext) -> None:
    settings = ctx.get("settings") or TrainingSettings()
    datastore = open_datastore(settings)
    await datastore.open()
    catalog = discover_plugins(settings.training.plugin_dir)
    mlflow = settings.mlflow
    # Building MLflow's clients is blocking work: off the event loop.
    registry = await asyncio.to_thread(
        ModelRegistry, mlflow.tracking_uri, experiment=mlflow.experiment
    )
    records = await asyncio.to_thread(
        ModelRecords, mlflow.tracking_uri, experiment=mlflow.experiment
    )
    for source, error in catalog.errors.items():
        logger.warning("plugin %s not loaded: %s", source, error)
    store = TaskStore(
        ctx["redis"],
        settings.training.key_prefix,
        ttl_s=settings.training.task_ttl_s,
        lease_s=settings.training.lease_s,
    )
    await sweep_task_dirs(store, settings.training.tmp_dir)
    ctx["state"] = WorkerState(
        settings=settings,
        store=store,
        datastore=datastore,
        catalog=catalog,
        registry=registry,
        records=records,
    )
    ctx["loop"] = LoopDeps(
        settings=settings,
        arq=ctx["redis"],
        store=store,
        users=UserStore(ctx["redis"], settings.training.key_prefix),
        datastore=datastore,
        registry=AsyncModelRegistry(registry, anyio.CapacityLimiter(LOOP_REGISTRY_THREADS)),
        catalog=catalog,
    )
    logger.info(
        "training worker ready: queue %s, plugins %s",
        settings.training.queue_name,
        ", ".join(sorted(catalog.plugins)),
    )


async def shutdown(ctx: WorkerContext) -> None:
    state = ctx.get("state")
    if state is not None:
        await state.datastore.close()


async def detect_external_moves(ctx: WorkerContext) -> int:
    """arq cron: record alias moves made outside CHIMP (see chimp.training.external)."""
    state = ctx["state"]
    try:
        return await asyncio.to_thread(record_all_external_moves, state.registry, state.records)
    except Exception:
        logger.warning("could not check for alias moves made outside CHIMP", exc_info=True)
        return 0


def external_moves_cron(every_s: int = 20, queue_name: str = "chimp:training") -> CronJob:
    # Every 20 s by default: a move made in the MLflow UI is in the history within a minute.
    # arq makes a cron job's id from its name and time, unique across all queues of a Redis:
    # the queue in the name keeps one check per deployment, not one per Redis.
    return cron(
        detect_external_moves,  # type: ignore[arg-type]
        name=f"detect_external_moves:{queue_name}",
        second=set(range(0, 60, every_s)),
    )


def job_function(settings: TrainingSettings) -> Function:
    return func(
        run_training_task,  # type: ignore[arg-type]
        name=JOB_FUNCTION,
        timeout=settings.training.task_timeout_s + JOB_TIMEOUT_MARGIN_S,
        # A retried training would re-run from scratch after an unknown partial run.
        max_tries=1,
    )


async def continual_loop(ctx: WorkerContext) -> dict[str, Any]:
    """The arq cron job: one pass of the continual loop (see :mod:`chimp.training.loop`)."""
    return summary(await run_loop(ctx["loop"]))


def loop_schedule(interval_s: float) -> dict[str, set[int] | int | None]:
    """arq cron fields that fire about every ``interval_s`` (cron has no plain intervals).

    Under a minute: on the seconds that are multiples of the interval; from a minute on: on the
    minutes that are multiples of it, at second 0.
    """
    if interval_s < 60:
        step = max(1, round(interval_s))
        return {"second": set(range(0, 60, step)), "minute": None}
    step = max(1, min(59, round(interval_s / 60)))
    return {"second": 0, "minute": set(range(0, 60, step))}


def loop_cron(settings: TrainingSettings) -> CronJob:
    # arq makes a cron job's id from its name and time, unique across all queues of a Redis:
    # the queue in the name keeps one loop run per deployment, not one per Redis.
    return cron(
        continual_loop,  # type: ignore[arg-type]
        name=f"{LOOP_FUNCTION}:{settings.training.queue_name}",
        **loop_schedule(settings.training.loop_interval_s),  # type: ignore[arg-type]
        unique=True,
        timeout=LOOP_TIMEOUT_S,
    )


def worker_options(settings: TrainingSettings) -> dict[str, Any]:
    """Keyword arguments of arq's ``Worker`` for ``settings``."""
    return {
        "functions": [job_function(settings)],
        "cron_jobs": [
            external_moves_cron(
                settings.training.alias_check_interval_s, settings.training.queue_name
            ),
            loop_cron(settings),
        ],
        "redis_settings": redis_settings(settings.redis_url),
        "queue_name": settings.training.queue_name,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "max_jobs": settings.training.max_jobs,
        "job_timeout": settings.training.task_timeout_s + JOB_TIMEOUT_MARGIN_S,
        "job_serializer": serialize_job,
        "job_deserializer": deserialize_job,
        "keep_result": 3600,
        "poll_delay": 0.2,
    }


def create_worker(settings: TrainingSettings, **overrides: Any) -> Worker:
    return Worker(**{**worker_options(settings), **overrides})


class _ArqCliSettings(dict[str, Any]):
    """What ``arq chimp.training.worker.WorkerSettings`` reads.

    arq's CLI takes a class or a dict and reads its items; this dict builds them from the
    environment on that read, so importing the module instantiates no settings.
    """

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        return worker_options(TrainingSettings()).items()


WorkerSettings = _ArqCliSettings()
