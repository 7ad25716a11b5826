"""A person's data as a whole: what is kept about them, and forgetting them on request.

What is theirs: calibration datasets (``calib-<user>-<ms>``), the corrections dataset
(``feedback-<user>``), every model version trained for them (runs tagged ``chimp.user_id``)
with the ``user-<id>`` alias, task records naming them, and their Redis keys.
"""

from __future__ import annotations

import logging
from functools import partial

import anyio.to_thread
import redis.asyncio as aioredis

from chimp.shared.datastore import Datastore
from chimp.shared.errors import NotFoundError
from chimp.shared.registry import AsyncModelRegistry, user_alias
from chimp.shared.registry.layout import TAG_BASE_VERSION
from chimp.shared.schemas.users import PersonalModel, UserDeletion, UserInfo
from chimp.training.feedback import (
    check_user_id,
    count_corrections,
    feedback_dataset,
    is_calibration_of,
)
from chimp.training.history import remove_alias
from chimp.training.records import ModelRecords
from chimp.training.task_store import TaskStore
from chimp.training.user_store import UserStore

logger = logging.getLogger(__name__)

# arq's own keys of a job (the payload names the user's datasets).
ARQ_KEY_PREFIXES = ("arq:job:", "arq:result:", "arq:retry:", "arq:in-progress:")


async def calibration_datasets(datastore: Datastore, user_id: str) -> list[str]:
    return [d.name for d in await datastore.list_datasets() if is_calibration_of(d.name, user_id)]


async def personal_model(
    registry: AsyncModelRegistry, model_name: str, user_id: str
) -> PersonalModel | None:
    """The version ``user-<id>`` points at, with the production version it started from."""
    try:
        version = await registry.resolve(model_name, alias=user_alias(user_id))
    except NotFoundError:
        return None
    return PersonalModel(
        model=model_name, version=version.version, base_version=version.tags.get(TAG_BASE_VERSION)
    )


async def describe_user(
    datastore: Datastore,
    registry: AsyncModelRegistry,
    users: UserStore,
    *,
    model_name: str,
    user_id: str,
    feedback_threshold: int,
) -> UserInfo:
    check_user_id(user_id)
    corrections = await count_corrections(datastore, user_id)
    record = await users.loop_record(user_id)
    return UserInfo(
        user_id=user_id,
        calibration_datasets=await calibration_datasets(datastore, user_id),
        corrections=corrections,
        pending_corrections=max(0, corrections - record.used),
        feedback_threshold=feedback_threshold,
        personal_model=await personal_model(registry, model_name, user_id),
        review_uncertain=await users.review_enabled(user_id),
    )


async def _delete_tasks(client: aioredis.Redis, store: TaskStore, user_id: str) -> int:
    """Task records (and arq's copies of their jobs) that name the user."""
    removed = 0
    offset, page = 0, 500
    while True:
        tasks = await store.list(limit=page, offset=offset)
        if not tasks:
            return removed
        mine = [t.task_id for t in tasks if t.user_id == user_id]
        for task_id in mine:
            await store.delete(task_id)
            await client.delete(*(prefix + task_id for prefix in ARQ_KEY_PREFIXES))
        removed += len(mine)
        offset += len(tasks) - len(mine)


async def delete_user(
    datastore: Datastore,
    registry: AsyncModelRegistry,
    users: UserStore,
    store: TaskStore,
    client: aioredis.Redis,
    records: ModelRecords,
    user_id: str,
    *,
    actor: str = "token",
) -> UserDeletion:
    """Remove everything kept about ``user_id``; safe to repeat (a second call removes nothing).

    Models go first: once the alias is gone, serving answers the user with production.
    """
    check_user_id(user_id)
    versions = await registry.user_versions(user_id)
    for version in versions:
        for alias in version.aliases:
            # Recorded like any other move; serving answers the user with production now.
            await anyio.to_thread.run_sync(
                partial(
                    remove_alias,
                    registry.sync,
                    records,
                    version.name,
                    alias,
                    actor=actor,
                    reason=f"the data of user {user_id} was deleted",
                )
            )
        await registry.delete_version(version.name, version.version)
    names = await calibration_datasets(datastore, user_id)
    names.append(feedback_dataset(user_id))
    deleted: list[str] = []
    for name in names:
        try:
            await datastore.delete_dataset(name)
            deleted.append(name)
        except NotFoundError:
            continue
    tasks = await _delete_tasks(client, store, user_id)
    keys = await users.delete_user(user_id)
    logger.info(
        "deleted user %s: %d datasets, %d model versions, %d tasks, %d Redis keys",
        user_id,
        len(deleted),
        len(versions),
        tasks,
        keys,
    )
    return UserDeletion(
        user_id=user_id,
        datasets=deleted,
        model_versions=[f"{v.name}:{v.version}" for v in versions],
        redis_keys=keys,
        tasks=tasks,
    )
