"""Guarantee: Redis restarting (with its append-only file) loses no task. Queued tasks still
run; a running task ends succeeded, or failed with a reason; none is left hanging."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from chimp.shared.schemas.tasks import TaskInfo, TaskStatus
from tests.faults.conftest import OwnRedis, worker_process
from tests.training.conftest import SettingsFactory, api_client, running_worker


async def _finished(client: httpx.AsyncClient, task_id: str, timeout_s: float = 120.0) -> TaskInfo:
    """Poll through the outage: a 503 while Redis is away is expected, a lost task is not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        response = await client.get(f"/tasks/{task_id}")
        assert response.status_code in (200, 503), response.text
        if response.status_code == 200:
            task = TaskInfo.model_validate(response.json())
            if task.status.finished:
                return task
        assert loop.time() < deadline, f"task {task_id} never finished"
        await asyncio.sleep(0.2)


async def _submit(client: httpx.AsyncClient, **arguments: object) -> str:
    response = await client.post("/tasks/run/example", json={"arguments": arguments})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def test_redis_restart_keeps_queued_tasks_and_they_still_run(
    make_settings: SettingsFactory, own_redis: OwnRedis, redis_client: aioredis.Redis
) -> None:
    settings = make_settings().model_copy(update={"redis_url": own_redis.url})
    async with api_client(settings) as client:
        queued = [await _submit(client, greeting=f"hi {i}", steps=1) for i in range(3)]
        own_redis.restart()  # no worker yet: all three are only in Redis
        async with running_worker(settings):
            tasks = [await _finished(client, task_id) for task_id in queued]
    assert [t.status for t in tasks] == [TaskStatus.SUCCEEDED] * 3
    assert [t.result["greeting"] for t in tasks if t.result] == ["hi 0", "hi 1", "hi 2"]


async def test_redis_restart_while_a_task_runs_ends_it_with_an_outcome(
    make_settings: SettingsFactory,
    own_redis: OwnRedis,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    settings = make_settings(lease_s=5.0).model_copy(update={"redis_url": own_redis.url})
    async with api_client(settings) as client:
        with worker_process(settings, tmp_path / "worker.log"):
            task_id = await _submit(client, greeting="hi", steps=20, duration_s=8.0)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while (await client.get(f"/tasks/{task_id}")).json()["status"] != "running":
                assert loop.time() < deadline
                await asyncio.sleep(0.1)
            own_redis.stop()
            await asyncio.sleep(4)
            own_redis.start()
            task = await _finished(client, task_id)
            # Whichever outcome, it is told: succeeded with its result, or failed saying why.
            if task.status is TaskStatus.SUCCEEDED:
                assert task.result is not None
            else:
                assert task.status is TaskStatus.FAILED
                assert task.error
            # And Redis serves new work after the restart.
            again = await _finished(client, await _submit(client, greeting="after", steps=1))
            assert again.status is TaskStatus.SUCCEEDED
