"""Uncertain frames: crops the model was unsure about, kept for their person to label later.

Off unless the person turned it on; at most ``review_per_hour`` frames an hour and
``review_max_items`` in all; each frame expires after ``review_ttl_s``. Labelling one turns it
into an ordinary correction; nothing stays in the queue after that.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import anyio.to_thread
import redis.asyncio as aioredis

from chimp.shared.datastore import Datastore
from chimp.shared.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from chimp.shared.registry import AsyncModelRegistry
from chimp.shared.schemas.users import Correction, ReviewItem, ReviewOffer
from chimp.training.config import TrainingConfig
from chimp.training.feedback import (
    check_user_id,
    crop_to_png,
    labels_of,
    new_correction_id,
    store_correction,
)
from chimp.training.user_store import UserStore

HOUR_S = 3600


class ReviewQueue:
    def __init__(
        self,
        client: aioredis.Redis,
        users: UserStore,
        datastore: Datastore,
        registry: AsyncModelRegistry,
        config: TrainingConfig,
    ) -> None:
        self._redis = client
        self._users = users
        self._datastore = datastore
        self._registry = registry
        self._config = config

    def _items(self, user_id: str) -> str:
        return self._users.key(user_id, "review")

    def _order(self, user_id: str) -> str:
        return self._users.key(user_id, "review-order")

    async def offer(
        self,
        user_id: str,
        *,
        image: bytes,
        model: str,
        version: str,
        predicted: str,
        confidence: float,
    ) -> ReviewOffer:
        check_user_id(user_id)
        if not await self._users.review_enabled(user_id):
            return ReviewOffer(kept=False, reason="review of uncertain frames is off")
        if len(image) > self._config.feedback_max_image_bytes:
            raise PayloadTooLargeError(
                f"the face crop is larger than {self._config.feedback_max_image_bytes} bytes",
                detail={"field": "file"},
            )
        try:
            png = await anyio.to_thread.run_sync(crop_to_png, image)
        except InvalidInputError as exc:
            raise InvalidInputError(f"file: {exc.message}", detail={"field": "file"}) from exc
        if predicted not in await labels_of(self._registry, model, version):
            raise InvalidInputError(
                f"unknown label {predicted!r} for {model} version {version}",
                detail={"field": "predicted"},
            )
        if await self._redis.zcard(self._order(user_id)) >= self._config.review_max_items:
            return ReviewOffer(
                kept=False, reason=f"the review queue is full ({self._config.review_max_items})"
            )
        now = datetime.now(UTC)
        hour_key = self._users.key(user_id, f"review-hour:{now:%Y%m%d%H}")
        count = await self._redis.incr(hour_key)
        if count == 1:
            await self._redis.expire(hour_key, HOUR_S)
        if count > self._config.review_per_hour:
            return ReviewOffer(
                kept=False,
                reason=f"at most {self._config.review_per_hour} frames an hour are kept",
            )
        item = ReviewItem(
            id=new_correction_id(now),
            model=model,
            version=version,
            predicted=predicted,
            confidence=confidence,
            at=now,
        )
        record = {**item.model_dump(mode="json"), "png": base64.b64encode(png).decode()}
        ttl = self._config.review_ttl_s
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._items(user_id), item.id, json.dumps(record))
            pipe.zadd(self._order(user_id), {item.id: now.timestamp()})
            pipe.expire(self._items(user_id), ttl)
            pipe.expire(self._order(user_id), ttl)
            await pipe.execute()
        return ReviewOffer(kept=True, reason="kept for review", item=item)

    async def _record(self, user_id: str, item_id: str) -> dict[str, object]:
        raw = await self._redis.hget(self._items(user_id), item_id)  # type: ignore[misc]
        if raw is None:
            raise NotFoundError(f"no frame {item_id!r} waits for review")
        record: dict[str, object] = json.loads(raw)
        return record

    async def list(self, user_id: str) -> list[ReviewItem]:
        """Waiting frames, oldest first (expired ones are dropped on the way)."""
        check_user_id(user_id)
        ids = [i.decode() for i in await self._redis.zrange(self._order(user_id), 0, -1)]
        if not ids:
            return []
        raws = await self._redis.hmget(self._items(user_id), ids)  # type: ignore[misc]
        gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            await self._redis.zrem(self._order(user_id), *gone)
        return [ReviewItem.model_validate_json(raw) for raw in raws if raw is not None]

    async def image(self, user_id: str, item_id: str) -> bytes:
        check_user_id(user_id)
        return base64.b64decode(str((await self._record(user_id, item_id))["png"]))

    async def discard(self, user_id: str, item_id: str) -> None:
        check_user_id(user_id)
        await self._record(user_id, item_id)
        await self._redis.hdel(self._items(user_id), item_id)  # type: ignore[misc]
        await self._redis.zrem(self._order(user_id), item_id)

    async def label(self, user_id: str, item_id: str, label: str) -> Correction:
        """Turn a waiting frame into a correction (one click on the page)."""
        check_user_id(user_id)
        record = await self._record(user_id, item_id)
        item = ReviewItem.model_validate(record)
        correction = await store_correction(
            self._datastore,
            self._registry,
            user_id=user_id,
            image=base64.b64decode(str(record["png"])),
            label=label,
            model=item.model,
            version=item.version,
            predicted=item.predicted,
            confidence=item.confidence,
            max_image_bytes=self._config.feedback_max_image_bytes,
            source="review",
        )
        await self._redis.hdel(self._items(user_id), item_id)  # type: ignore[misc]
        await self._redis.zrem(self._order(user_id), item_id)
        return correction
