"""Guarantee: a task whose worker is SIGKILLed mid-training ends ``failed`` (not retried, per
the documented policy) within the lease; its child stops with it, so no model can be
registered late; and its temp files are removed by the next worker to start."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from chimp.shared.schemas.tasks import TaskStatus
from tests.faults.conftest import worker_process
from tests.training.conftest import SettingsFactory, api_client, wait_for_task

LEASE_S = 2.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; only its parent (gone) would reap it.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


async def _until(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def test_worker_killed_mid_training_fails_the_task_stops_training_and_cleans_up(
    make_settings: SettingsFactory,
    redis_client: aioredis.Redis,
    slow_plugin_dir: Path,
    tmp_path: Path,
) -> None:
    settings = make_settings(plugin_dir=slow_plugin_dir, lease_s=LEASE_S)
    task_tmp = settings.training.tmp_dir
    assert task_tmp is not None
    pid_file = tmp_path / "child.pid"
    log = tmp_path / "worker.log"
    async with api_client(settings) as client:
        with worker_process(settings, log) as worker:
            response = await client.post(
                "/tasks/run/slow", json={"arguments": {"pid_file": str(pid_file)}}
            )
            task_id = response.json()["task_id"]
            await wait_for_task(client, task_id, until=lambda t: t.progress == 0.5)
            child = int(pid_file.read_text())
            assert list(task_tmp.iterdir()) != []  # training is under way
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        # The training child dies with its worker: nothing can register a model later.
        await _until(lambda: not _alive(child))
        task = await wait_for_task(client, task_id, timeout_s=LEASE_S * 10)
        assert task.status is TaskStatus.FAILED
        assert task.error is not None
        assert "worker" in task.error
        assert "not retried" in task.error
        # What the killed worker left in its temp folder goes when the next worker starts.
        with worker_process(settings, log):
            await _until(lambda: list(task_tmp.iterdir()) == [])
        # And the task stays failed: never silently re-run.
        assert (await client.get(f"/tasks/{task_id}")).json()["status"] == "failed"
