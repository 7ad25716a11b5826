"""Waiting until a service answers: HTTP health for our APIs and MLflow, PING for Redis."""

from __future__ import annotations

import asyncio

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chimp.stack.spec import HttpReady, Readiness, RedisReady

# Quick first probes (a warm service answers at once), then backing off: every probe is a line
# in the service's access log.
FIRST_POLL_S = 0.2
MAX_POLL_S = 2.0
PROBE_TIMEOUT_S = 3.0


async def redis_answers(url: str) -> bool:
    client = aioredis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S
    )
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def _http_answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return False
    return response.is_success


async def is_ready(readiness: Readiness, client: httpx.AsyncClient) -> bool:
    if isinstance(readiness, HttpReady):
        return await _http_answers(client, readiness.url)
    return await redis_answers(readiness.url)


async def wait_until_ready(readiness: Readiness) -> None:
    """Poll until ready; the caller bounds the wait (and notices a process that died)."""
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
        delay = FIRST_POLL_S
        while True:
            if await is_ready(readiness, client):
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, MAX_POLL_S)


__all__ = ["HttpReady", "RedisReady", "is_ready", "redis_answers", "wait_until_ready"]
