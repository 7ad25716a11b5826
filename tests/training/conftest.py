"""Fixtures of the training tests: settings isolated per test, the API app, an in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.worker import Worker

from chimp.shared.schemas.tasks import TaskInfo
from chimp.shared.settings import DatastoreConfig, MlflowConfig
from chimp.training.app import create_app
from chimp.training.config import TrainingConfig, TrainingSettings
from chimp.training.worker import create_worker

# Tests that never register a model point MLflow at a port nothing listens on.
NO_MLFLOW = "http://127.0.0.1:9"

SettingsFactory = Callable[..., TrainingSettings]


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str, redis_prefix: str) -> SettingsFactory:
    def make(
        *, mlflow_uri: str = NO_MLFLOW, datastore: DatastoreConfig | None = None, **training: Any
    ) -> TrainingSettings:
        config: dict[str, Any] = {
            "queue_name": f"{redis_prefix}:queue",
            "key_prefix": redis_prefix,
            "poll_interval_s": 0.2,
            "cancel_grace_s": 1.0,
            "tmp_dir": tmp_path / "task-tmp",
        }
        config.update(training)
        (tmp_path / "task-tmp").mkdir(exist_ok=True)
        return TrainingSettings(
            _env_file=None,
            data_dir=tmp_path / "data",
            redis_url=redis_url,
            datastore=datastore
            or DatastoreConfig(backend="local", local_path=tmp_path / "datastore"),
            mlflow=MlflowConfig(tracking_uri=mlflow_uri, experiment=f"{redis_prefix}-exp"),
            training=TrainingConfig(**config),
        )

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> TrainingSettings:
    return make_settings()


@contextlib.asynccontextmanager
async def api_client(settings: TrainingSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://training") as client:
            yield client


@pytest.fixture
async def client(
    settings: TrainingSettings, redis_client: object
) -> AsyncIterator[httpx.AsyncClient]:
    # redis_client is requested so its teardown removes this test's keys.
    async with api_client(settings) as http:
        yield http


# How long a finished test waits for jobs still in flight before the worker is closed.
JOB_DRAIN_TIMEOUT_S = 10.0


@contextlib.asynccontextmanager
async def running_worker(settings: TrainingSettings) -> AsyncIterator[Worker]:
    worker = create_worker(settings, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        # A job whose outcome the test already saw may still be in arq's own bookkeeping
        # (recording its result). close() cancels jobs in flight, so let those end first.
        in_flight = [t for t in worker.tasks.values() if not t.done()]
        if in_flight:
            await asyncio.wait(in_flight, timeout=JOB_DRAIN_TIMEOUT_S)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await worker.close()
        except asyncio.CancelledError:
            # A job still running after the drain was cancelled by close(); that is the
            # shutdown we asked for. Our own cancellation must still propagate.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise


@pytest.fixture
async def worker(settings: TrainingSettings) -> AsyncIterator[Worker]:
    async with running_worker(settings) as w:
        yield w


async def wait_for_task(
    client: httpx.AsyncClient,
    task_id: str,
    *,
    until: Callable[[TaskInfo], bool] = lambda t: t.status.finished,
    timeout_s: float = 120.0,
    seen: list[TaskInfo] | None = None,
) -> TaskInfo:
    """Poll the task until ``until`` holds (a generous deadline only to avoid hanging CI)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        response = await client.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        task = TaskInfo.model_validate(response.json())
        if seen is not None:
            seen.append(task)
        if until(task):
            return task
        if loop.time() > deadline:
            raise AssertionError(f"task never reached the expected state: {task}")
        await asyncio.sleep(0.1)
