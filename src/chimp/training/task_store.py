"""Task state in Redis, so it outlives any API or worker process.

Each task is a hash ``<prefix>:task:<id>`` (JSON-encoded field values) and a member of the sorted
set ``<prefix>:tasks`` scored by creation time. A finished task is final: every update goes
through a Lua script that refuses to touch a task once it is succeeded, failed or cancelled,
so a late progress message from a cancelled run cannot revive it.

A running task also has a lease ``<prefix>:lease:<id>`` that its worker renews while it works.
A task still ``running`` whose lease expired lost its worker (killed, or cut off from Redis
for longer than the lease): whoever reads it next records it as failed, saying so. Such a
task is not retried: a training re-run from scratch after an unknown partial run could
register a second version for one task.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from chimp.shared.errors import NotFoundError
from chimp.shared.schemas.tasks import TaskInfo, TaskStatus

_FINISHED = [json.dumps(s.value) for s in TaskStatus if s.finished]

# KEYS[1] task hash; ARGV: field, value, field, value, ...; returns 1 applied, 0 final, -1 missing.
_UPDATE_UNLESS_FINISHED = f"""
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
for _, final in ipairs({{{", ".join(repr(s) for s in _FINISHED)}}}) do
  if status == final then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


WORKER_LOST = "the worker running this task stopped (no heartbeat within {lease:g} s); not retried"


def _decode(raw: dict[bytes, bytes]) -> TaskInfo:
    return TaskInfo.model_validate({k.decode(): json.loads(v) for k, v in raw.items()})


class TaskStore:
    def __init__(
        self, client: aioredis.Redis, prefix: str, *, ttl_s: int, lease_s: float = 60.0
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self.lease_s = lease_s
        self._update = client.register_script(_UPDATE_UNLESS_FINISHED)

    def _key(self, task_id: str) -> str:
        return f"{self._prefix}:task:{task_id}"

    def _lease(self, task_id: str) -> str:
        return f"{self._prefix}:lease:{task_id}"

    async def renew_lease(self, task_id: str) -> None:
        await self._redis.set(self._lease(task_id), b"1", px=int(self.lease_s * 1000))

    async def release_lease(self, task_id: str) -> None:
        await self._redis.delete(self._lease(task_id))

    async def has_lease(self, task_id: str) -> bool:
        return bool(await self._redis.exists(self._lease(task_id)))

    async def _settle_lost(self, tasks: list[TaskInfo]) -> list[TaskInfo]:
        """Record running tasks whose worker is gone as failed; returns the tasks as now stored."""
        running = [t for t in tasks if t.status is TaskStatus.RUNNING]
        if not running:
            return tasks
        async with self._redis.pipeline(transaction=False) as pipe:
            for task in running:
                pipe.exists(self._lease(task.task_id))
            alive = await pipe.execute()
        lost = {t.task_id for t, live in zip(running, alive, strict=True) if not live}
        if not lost:
            return tasks
        error = WORKER_LOST.format(lease=self.lease_s)
        settled = []
        for task in tasks:
            if task.task_id in lost:
                await self.finish(task.task_id, TaskStatus.FAILED, message="failed", error=error)
                task = await self._read(task.task_id)
            settled.append(task)
        return settled

    @property
    def _index(self) -> str:
        return f"{self._prefix}:tasks"

    async def create(self, task: TaskInfo) -> None:
        fields = {k: json.dumps(v) for k, v in task.model_dump(mode="json").items()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(task.task_id), mapping=fields)
            pipe.zadd(self._index, {task.task_id: task.created_at.timestamp()})
            await pipe.execute()

    async def _read(self, task_id: str) -> TaskInfo:
        raw = await self._redis.hgetall(self._key(task_id))  # type: ignore[misc]
        if not raw:
            raise NotFoundError(f"no task with id '{task_id}'", detail={"task_id": task_id})
        return _decode(raw)

    async def get(self, task_id: str) -> TaskInfo:
        (task,) = await self._settle_lost([await self._read(task_id)])
        return task

    async def list(self, *, limit: int = 100, offset: int = 0) -> list[TaskInfo]:
        """Newest first; ids whose record expired are dropped from the index on the way."""
        ids = [
            raw_id.decode()
            for raw_id in await self._redis.zrevrange(self._index, offset, offset + limit - 1)
        ]
        # One round trip for the page, not one per task.
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(self._key(task_id))
            records = await pipe.execute()
        expired = [task_id for task_id, raw in zip(ids, records, strict=True) if not raw]
        if expired:
            await self._redis.zrem(self._index, *expired)
        return await self._settle_lost([_decode(raw) for raw in records if raw])

    async def update(self, task_id: str, **fields: Any) -> bool:
        """Set ``fields`` unless the task is finished; True when applied."""
        args: list[str] = []
        for name, value in fields.items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, TaskStatus):
                value = value.value
            args += [name, json.dumps(value)]
        applied = await self._update(keys=[self._key(task_id)], args=args)
        if applied == -1:
            raise NotFoundError(f"no task with id '{task_id}'", detail={"task_id": task_id})
        return bool(applied == 1)

    async def mark_running(self, task_id: str) -> bool:
        # The lease first, so nobody ever sees this task running without one.
        await self.renew_lease(task_id)
        return await self.update(
            task_id, status=TaskStatus.RUNNING, started_at=utcnow(), message="starting"
        )

    async def set_progress(self, task_id: str, progress: float, message: str) -> bool:
        return await self.update(task_id, progress=min(1.0, max(0.0, progress)), message=message)

    async def finish(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        message: str = "",
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """Move the task to a final status (once) and start its retention clock."""
        fields: dict[str, Any] = {"status": status, "finished_at": utcnow(), "message": message}
        if status is TaskStatus.SUCCEEDED:
            fields["progress"] = 1.0
            fields["result"] = result
        if error is not None:
            fields["error"] = error
        applied = await self.update(task_id, **fields)
        if applied:
            await self._redis.expire(self._key(task_id), self._ttl_s)
        return applied

    async def delete(self, task_id: str) -> None:
        """Forget a task (its person asked for their data to go)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(task_id))
            pipe.zrem(self._index, task_id)
            await pipe.execute()

    async def is_cancelled(self, task_id: str) -> bool:
        raw = await self._redis.hget(self._key(task_id), "status")  # type: ignore[misc]
        return raw is not None and json.loads(raw) == TaskStatus.CANCELLED.value
