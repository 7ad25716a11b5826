"""What the training service keeps in Redis about a person, all under ``<prefix>:user:<id>:``.

- ``loop``: the continual loop's bookkeeping (corrections already used, the task running for
  them, failures and when to retry);
- ``settings``: the person's choices (``review_uncertain``);
- ``review``, ``review-order``, ``review-hour:<hour>``: the queue of uncertain frames.

One prefix per person makes deleting them one scan. The shared loop's state is
``<prefix>:loop:shared``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis


@dataclass
class LoopRecord:
    """The loop's memory of one target (a user, or the shared model)."""

    used: int = 0  # corrections used by the last run that succeeded
    started_with: int = 0  # corrections counted when the run in flight started
    tried_base: str | None = None  # production version a stale-model run was started for
    task_id: str | None = None  # the run in flight, if any
    failures: int = 0
    retry_at: float | None = None  # unix time before which no new run starts
    last_error: str | None = None

    @classmethod
    def parse(cls, raw: dict[bytes, bytes]) -> LoopRecord:
        fields = {k.decode(): json.loads(v) for k, v in raw.items()}
        known = {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def fields(self) -> dict[str, str]:
        return {name: json.dumps(getattr(self, name)) for name in self.__dataclass_fields__}


class UserStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def key(self, user_id: str, part: str) -> str:
        return f"{self._prefix}:user:{user_id}:{part}"

    @property
    def shared_key(self) -> str:
        return f"{self._prefix}:loop:shared"

    @property
    def meta_key(self) -> str:
        return f"{self._prefix}:loop:meta"

    # -- loop bookkeeping --------------------------------------------------------------------

    async def _read(self, key: str) -> LoopRecord:
        raw = await self._redis.hgetall(key)  # type: ignore[misc]
        return LoopRecord.parse(raw) if raw else LoopRecord()

    async def loop_record(self, user_id: str) -> LoopRecord:
        return await self._read(self.key(user_id, "loop"))

    async def save_loop_record(self, user_id: str, record: LoopRecord) -> None:
        await self._redis.hset(self.key(user_id, "loop"), mapping=record.fields())  # type: ignore[misc]

    async def shared_record(self) -> LoopRecord:
        return await self._read(self.shared_key)

    async def save_shared_record(self, record: LoopRecord) -> None:
        await self._redis.hset(self.shared_key, mapping=record.fields())  # type: ignore[misc]

    async def lock(self, user_id: str, ttl_s: int) -> bool:
        """Take the user's loop lock (one loop run per user at a time); False when held."""
        return bool(await self._redis.set(self.key(user_id, "lock"), "1", nx=True, ex=ttl_s))

    async def unlock(self, user_id: str) -> None:
        await self._redis.delete(self.key(user_id, "lock"))

    async def mark_loop_run(self) -> None:
        await self._redis.hset(  # type: ignore[misc]
            self.meta_key, "last_run_at", datetime.now(UTC).isoformat()
        )

    async def last_loop_run(self) -> datetime | None:
        raw = await self._redis.hget(self.meta_key, "last_run_at")  # type: ignore[misc]
        return datetime.fromisoformat(raw.decode()) if raw else None

    # -- settings ------------------------------------------------------------------------------

    async def review_enabled(self, user_id: str) -> bool:
        raw = await self._redis.hget(self.key(user_id, "settings"), "review_uncertain")  # type: ignore[misc]
        return bool(raw == b"1")

    async def set_review_enabled(self, user_id: str, enabled: bool) -> None:
        await self._redis.hset(  # type: ignore[misc]
            self.key(user_id, "settings"), "review_uncertain", "1" if enabled else "0"
        )

    # -- forgetting a person -------------------------------------------------------------------

    async def delete_user(self, user_id: str) -> int:
        """Remove every key of the user; returns how many there were."""
        keys = [k async for k in self._redis.scan_iter(match=self.key(user_id, "*"), count=500)]
        if keys:
            await self._redis.delete(*keys)
        return len(keys)
