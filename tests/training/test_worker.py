"""Tasks run by a real arq worker on real Redis: progress, results, failures, cancel, timeouts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from arq.jobs import Job
from mlflow import MlflowClient
from mlflow.entities import Run

from chimp.shared.schemas.tasks import TaskInfo, TaskStatus
from chimp.training.config import TrainingSettings
from chimp.training.jobs import deserialize_job
from tests.training.conftest import (
    SettingsFactory,
    api_client,
    running_worker,
    wait_for_task,
)
from tests.training.test_api import make_zip, upload

STUBBORN_PLUGIN = textwrap.dedent(
    """
    import os
    import time

    from chimp.shared.schemas.plugins import PluginArgument, PluginInfo
    from chimp.training.plugins.base import BasePlugin


    class Stubborn(BasePlugin):
        info = PluginInfo(
            name="stubborn",
            version="0.1",
            arguments=[PluginArgument(name="crash", type="bool", optional=True, default=False)],
        )

        def run(self, context):
            context.report_progress(0.5, "ignoring cancellation")
            if context.arguments["crash"]:
                os._exit(3)
            time.sleep(600)
            return {}
    """
)

# Logs two epochs to its MLflow run and stages a model, then fails, waits to be cancelled, or
# ignores the cancel until the worker kills it.
STREAMING_PLUGIN = textwrap.dedent(
    """
    import time

    from chimp.shared.schemas.models import InputSpec, ModelMetadata
    from chimp.shared.schemas.plugins import PluginArgument, PluginInfo
    from chimp.training.plugins.base import BasePlugin


    class Streaming(BasePlugin):
        info = PluginInfo(
            name="streaming",
            version="0.1",
            arguments=[
                PluginArgument(name="model_name", type="str"),
                PluginArgument(name="then", type="str", choices=["fail", "wait", "ignore"]),
            ],
            model_return_type="onnx",
        )

        def run(self, context):
            for epoch in range(2):
                context.log_metrics({"train_loss": 1.0 / (epoch + 1)}, step=epoch)
            onnx_path = context.tmp_dir / "model.onnx"
            onnx_path.write_bytes(b"never registered")
            spec = InputSpec(height=4, width=4)
            metadata = ModelMetadata(task="image-classification", labels=["a"], input=spec)
            context.connector.store_model(context.arguments["model_name"], onnx_path, metadata)
            context.report_progress(0.5, "trained")
            if context.arguments["then"] == "fail":
                raise RuntimeError("broke after training")
            while True:
                if context.arguments["then"] == "wait":
                    context.check_cancelled()
                time.sleep(0.05)
    """
)


async def run_task(client: httpx.AsyncClient, plugin: str, body: dict[str, object]) -> str:
    response = await client.post(f"/tasks/run/{plugin}", json=body)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def job_result(settings: TrainingSettings, redis: aioredis.Redis, task_id: str) -> object:
    """Wait for the arq job of ``task_id`` to end and return what it returned."""
    job = Job(
        task_id,
        redis,
        _queue_name=settings.training.queue_name,
        _deserializer=deserialize_job,
    )
    return await job.result(timeout=60)


def no_task_dirs_left(settings: TrainingSettings) -> bool:
    assert settings.training.tmp_dir is not None
    return list(settings.training.tmp_dir.iterdir()) == []


async def test_example_task_succeeds_with_progress_and_result(
    client: httpx.AsyncClient, worker: object, settings: TrainingSettings
) -> None:
    task_id = await run_task(
        client, "example", {"arguments": {"greeting": "hello", "steps": 4, "duration_s": 0.4}}
    )
    seen: list[TaskInfo] = []
    task = await wait_for_task(client, task_id, seen=seen)
    assert task.status is TaskStatus.SUCCEEDED
    assert task.progress == 1.0
    assert task.result == {"greeting": "hello", "steps": 4}
    assert task.started_at is not None
    assert task.finished_at is not None
    assert any(t.status is TaskStatus.RUNNING for t in seen)
    progress = [t.progress for t in seen]
    assert progress == sorted(progress)
    poll = (await client.get(f"/tasks/poll/{task_id}")).json()
    assert poll == {"ready": True, "successful": True, "value": task.result}
    assert no_task_dirs_left(settings)


async def test_plugin_gets_its_dataset_downloaded(
    client: httpx.AsyncClient, worker: object, settings: TrainingSettings
) -> None:
    data = make_zip({"train/a/1.txt": b"1", "notes.txt": b"2"})
    assert (await upload(client, "tiny", data)).status_code == 201
    task_id = await run_task(
        client,
        "example",
        {"arguments": {"greeting": "x", "mode": "list"}, "datasets": {"data": "tiny"}},
    )
    task = await wait_for_task(client, task_id)
    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert task.result is not None
    assert task.result["files"] == ["notes.txt", "train/a/1.txt"]
    assert no_task_dirs_left(settings)


async def test_failing_plugin_marks_the_task_failed_with_its_error(
    client: httpx.AsyncClient, worker: object, settings: TrainingSettings
) -> None:
    task_id = await run_task(client, "example", {"arguments": {"greeting": "x", "fail": True}})
    task = await wait_for_task(client, task_id)
    assert task.status is TaskStatus.FAILED
    assert task.error == "RuntimeError: example failure after 5 steps"
    assert task.result is None
    poll = (await client.get(f"/tasks/poll/{task_id}")).json()
    assert poll == {"ready": True, "successful": False, "value": task.error}
    assert no_task_dirs_left(settings)


async def test_cancel_stops_a_running_task(
    client: httpx.AsyncClient,
    worker: object,
    settings: TrainingSettings,
    redis_client: aioredis.Redis,
) -> None:
    task_id = await run_task(
        client, "example", {"arguments": {"greeting": "x", "steps": 600, "duration_s": 300}}
    )
    await wait_for_task(client, task_id, until=lambda t: t.progress > 0)
    response = await client.post(f"/tasks/{task_id}/cancel")
    assert response.json()["status"] == "cancelled"
    # The arq job ends (the child process was stopped), leaving the task cancelled.
    await job_result(settings, redis_client, task_id)
    task = await wait_for_task(client, task_id)
    assert task.status is TaskStatus.CANCELLED
    assert task.result is None
    assert no_task_dirs_left(settings)


async def test_cancel_kills_a_plugin_that_ignores_it(
    make_settings: SettingsFactory, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "stubborn.py").write_text(STUBBORN_PLUGIN)
    settings = make_settings(plugin_dir=plugins)
    async with api_client(settings) as client, running_worker(settings):
        task_id = await run_task(client, "stubborn", {})
        await wait_for_task(client, task_id, until=lambda t: t.progress == 0.5)
        await client.post(f"/tasks/{task_id}/cancel")
        await job_result(settings, redis_client, task_id)
        assert (await wait_for_task(client, task_id)).status is TaskStatus.CANCELLED

        crash_id = await run_task(client, "stubborn", {"arguments": {"crash": True}})
        crashed = await wait_for_task(client, crash_id)
        assert crashed.status is TaskStatus.FAILED
        assert crashed.error is not None
        assert crashed.error.startswith("training process exited with code 3")
    assert no_task_dirs_left(settings)


async def test_task_over_its_time_limit_fails(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    settings = make_settings(task_timeout_s=1.0)
    async with api_client(settings) as client, running_worker(settings):
        task_id = await run_task(
            client, "example", {"arguments": {"greeting": "x", "steps": 100, "duration_s": 60}}
        )
        task = await wait_for_task(client, task_id)
        assert task.status is TaskStatus.FAILED
        assert task.error == "timed out after 1 s and was stopped"


async def test_task_cancelled_while_queued_never_runs(
    settings: TrainingSettings, redis_client: aioredis.Redis
) -> None:
    async with api_client(settings) as client:
        task_id = await run_task(client, "example", {"arguments": {"greeting": "x", "fail": True}})
        await client.post(f"/tasks/{task_id}/cancel")
        async with running_worker(settings):
            assert await job_result(settings, redis_client, task_id) == "cancelled"
        task = await wait_for_task(client, task_id)
        assert task.status is TaskStatus.CANCELLED
        assert task.started_at is None


async def test_dataset_deleted_after_submission_fails_the_task(
    settings: TrainingSettings, redis_client: aioredis.Redis
) -> None:
    async with api_client(settings) as client:
        assert (await upload(client, "gone", make_zip({"a.txt": b"1"}))).status_code == 201
        task_id = await run_task(
            client, "example", {"arguments": {"greeting": "x"}, "datasets": {"data": "gone"}}
        )
        assert (await client.delete("/datasets/gone")).status_code == 204
        async with running_worker(settings):
            task = await wait_for_task(client, task_id)
        assert task.status is TaskStatus.FAILED
        assert task.error is not None
        assert task.error.startswith("cannot fetch datasets")
        assert no_task_dirs_left(settings)


def task_runs(settings: TrainingSettings, task_id: str) -> list[Run]:
    """The MLflow runs tagged with ``task_id`` in the settings' experiment."""
    client = MlflowClient(settings.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    assert experiment is not None
    return list(
        client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`chimp.task_id` = '{task_id}'"
        )
    )


@pytest.mark.parametrize(("then", "status", "run_status"), [
    ("fail", TaskStatus.FAILED, "FAILED"), ("wait", TaskStatus.CANCELLED, "KILLED"),
    ("ignore", TaskStatus.CANCELLED, "KILLED"),  # killed: the worker ends the run
])  # fmt: skip
async def test_a_failed_or_cancelled_run_keeps_its_curves_and_registers_nothing(
    make_settings: SettingsFactory,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    mlflow_uri: str,
    model_name: str,
    then: str,
    status: TaskStatus,
    run_status: str,
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "streaming.py").write_text(STREAMING_PLUGIN)
    settings = make_settings(plugin_dir=plugins, mlflow_uri=mlflow_uri)
    async with api_client(settings) as client, running_worker(settings):
        body: dict[str, object] = {"arguments": {"model_name": model_name, "then": then}}
        task_id = await run_task(client, "streaming", body)
        if then != "fail":
            await wait_for_task(client, task_id, until=lambda t: t.progress == 0.5)
            # The run is open and its curve is in MLflow while the task is still running.
            (run,) = task_runs(settings, task_id)
            assert run.info.status == "RUNNING"
            await client.post(f"/tasks/{task_id}/cancel")
            await job_result(settings, redis_client, task_id)
        task = await wait_for_task(client, task_id)
    assert task.status is status
    (run,) = task_runs(settings, task_id)
    assert run.info.status == run_status
    assert run.data.params["arguments.then"] == then
    history = MlflowClient(mlflow_uri).get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1]
    assert MlflowClient(mlflow_uri).search_registered_models(f"name='{model_name}'") == []
    assert no_task_dirs_left(settings)
