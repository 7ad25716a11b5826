"""Guarantee: with MLflow down, serving keeps answering with the versions it loaded and
training fails the task with an error naming MLflow; both recover when MLflow is back,
without restarting anything."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from chimp.shared.registry import ModelRegistry
from chimp.shared.registry.names import PRODUCTION
from chimp.shared.schemas.models import InputSpec
from chimp.shared.schemas.tasks import TaskStatus
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.serving.conftest import TcpProxy, register_version, serve, serving_settings
from tests.training.conftest import SettingsFactory, api_client, running_worker, wait_for_task

# Stores a (tiny, fake) model: it needs MLflow for its run and for the registration.
STORING_PLUGIN = """
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.shared.schemas.plugins import PluginArgument, PluginInfo
from chimp.training.plugins.base import BasePlugin


class Storing(BasePlugin):
    info = PluginInfo(
        name="storing",
        version="0.1",
        arguments=[
            PluginArgument(name="model_name", type="str"),
            PluginArgument(name="onnx", type="str"),
        ],
        model_return_type="onnx",
    )

    def run(self, context):
        context.log_metrics({"train_loss": 0.5}, step=0)
        path = context.tmp_dir / "model.onnx"
        path.write_bytes(open(context.arguments["onnx"], "rb").read())
        metadata = ModelMetadata(
            task="image-classification", labels=["a", "b"], input=InputSpec(height=4, width=4)
        )
        context.connector.store_model(context.arguments["model_name"], path, metadata)
        return {}
"""


async def _version_served(client: httpx.AsyncClient, name: str, version: str) -> bool:
    for _ in range(150):
        listing = (await client.get("/models")).json()
        if listing["models"] and listing["models"][0]["aliases"].get(PRODUCTION) == version:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_serving_answers_through_an_mlflow_outage_and_follows_aliases_after(
    registry: ModelRegistry,
    model_name: str,
    mlflow_proxy: TcpProxy,
    tmp_path: Path,
    astronaut_jpeg: bytes,
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    proxied = f"http://127.0.0.1:{mlflow_proxy.port}"
    predict = f"/models/{model_name}/predict-image"
    async with serve(serving_settings(tmp_path, proxied, model_name)) as client:
        assert await _version_served(client, model_name, "1")
        mlflow_proxy.cut()
        during = [await client.post(predict, content=astronaut_jpeg) for _ in range(5)]
        second = register_version(registry, model_name, tmp_path, seed=2)  # moved while cut
        mlflow_proxy.restore()
        followed = await _version_served(client, model_name, second.version)
        after = await client.post(predict, content=astronaut_jpeg)
    assert [r.status_code for r in during] == [200] * 5
    assert {r.json()["model"]["version"] for r in during} == {"1"}
    assert followed
    assert after.json()["model"]["version"] == second.version


async def test_training_fails_clearly_without_mlflow_and_works_once_it_is_back(
    make_settings: SettingsFactory,
    redis_client: aioredis.Redis,
    mlflow_proxy: TcpProxy,
    model_name: str,
    tmp_path: Path,
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "storing.py").write_text(STORING_PLUGIN)
    proxied = f"http://127.0.0.1:{mlflow_proxy.port}"
    settings = make_settings(plugin_dir=plugins, mlflow_uri=proxied)
    onnx = make_tiny_onnx(tmp_path / "m.onnx", ["a", "b"], InputSpec(height=4, width=4))
    body = {"arguments": {"model_name": model_name, "onnx": str(onnx)}}
    async with api_client(settings) as client, running_worker(settings):
        mlflow_proxy.cut()
        down = (await client.post("/tasks/run/storing", json=body)).json()["task_id"]
        failed = await wait_for_task(client, down, timeout_s=300)
        mlflow_proxy.restore()
        up = (await client.post("/tasks/run/storing", json=body)).json()["task_id"]
        succeeded = await wait_for_task(client, up, timeout_s=300)
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert "mlflow" in failed.error.lower()
    assert succeeded.status is TaskStatus.SUCCEEDED, succeeded.error
