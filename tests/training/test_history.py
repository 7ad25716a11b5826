"""Alias history, rollback and policy through the real parts (API, worker, Redis, MLflow)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from mlflow import MlflowClient

from chimp.training.config import TrainingSettings
from tests.fixtures.ports import free_port, wait_for_port
from tests.serving.conftest import serve, serving_settings
from tests.training.conftest import SettingsFactory, api_client, running_worker
from tests.training.test_gate import (
    TEMPLATE_PLUGIN,
    aliases,
    faces_dataset,
    served_version,
    train,
    upload,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(TEMPLATE_PLUGIN, plugins / "template_plugin.py")
    return plugins


async def history(client: httpx.AsyncClient, model: str) -> list[dict[str, Any]]:
    response = await client.get(f"/models/{model}/history", params={"limit": 500})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_rollback_restores_the_previous_champion_and_serving_follows_twice(
    make_settings: SettingsFactory,
    mlflow_uri: str,
    plugin_dir: Path,
    model_name: str,
    redis_client: object,
    tmp_path: Path,
) -> None:
    settings = make_settings(mlflow_uri=mlflow_uri, plugin_dir=plugin_dir)
    async with api_client(settings) as client, running_worker(settings):
        await upload(client, "faces", faces_dataset(tmp_path / "faces"))
        await train(client, model_name, "faces", swap=1)  # v1: first champion
        await train(client, model_name, "faces", swap=0)  # v2: promoted by the gate
        await train(client, model_name, "faces", swap=1)  # v3: rejected, staging
        forced = await client.post(
            f"/models/{model_name}/aliases/production",
            json={"version": "3"},
            headers={"x-chimp-actor": "alice"},
        )
        assert forced.status_code == 200, forced.text
        async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as serving:
            assert await served_version(serving, model_name, "3") == "3"
            back = await client.post(f"/models/{model_name}/rollback")
            assert back.json() == {"alias": "production", "version": "2", "previous": "3"}
            assert await served_version(serving, model_name, "2") == "2"
            again = await client.post(f"/models/{model_name}/rollback")
            assert again.json() == {"alias": "production", "version": "1", "previous": "2"}
            assert await served_version(serving, model_name, "1") == "1"
        nothing = await client.post(f"/models/{model_name}/rollback")
        assert nothing.status_code == 409
        assert "nothing to roll back" in nothing.json()["error"]

        entries = await history(client, model_name)
        production = [e for e in entries if e["alias"] == "production"]
        assert [(e["kind"], e["to_version"]) for e in production] == [
            ("rollback", "1"), ("rollback", "2"), ("forced", "3"), ("gate", "2"), ("gate", "1")
        ]  # fmt: skip
        assert production[2]["actor"] == "user:alice"
        assert "past the gate" in production[2]["reason"]


def _start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--appendonly", "yes", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port)
    return proc


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server of this test's own, with persistence, that the test may restart."""
    folder = tmp_path / "redis"
    folder.mkdir()
    port = free_port()
    yield port, folder
    with contextlib.suppress(redis.RedisError):
        redis.Redis(port=port).shutdown(nosave=True)


async def test_history_lists_every_move_even_through_mlflow_and_survives_restarts(
    make_settings: SettingsFactory,
    mlflow_uri: str,
    plugin_dir: Path,
    model_name: str,
    own_redis: tuple[int, Path],
    tmp_path: Path,
) -> None:
    port, folder = own_redis
    proc = _start_redis(port, folder)
    settings: TrainingSettings = make_settings(
        mlflow_uri=mlflow_uri, plugin_dir=plugin_dir, alias_check_interval_s=1
    )
    settings.redis_url = f"redis://127.0.0.1:{port}/0"
    async with api_client(settings) as client, running_worker(settings):
        await upload(client, "faces", faces_dataset(tmp_path / "faces"))
        await train(client, model_name, "faces", swap=1)
        await train(client, model_name, "faces", swap=0)
        staged = await client.post(f"/models/{model_name}/aliases/staging", json={"version": "1"})
        assert staged.status_code == 200, staged.text
        # Straight through MLflow's API, behind CHIMP's back.
        MlflowClient(mlflow_uri).set_registered_model_alias(model_name, "production", "1")
        entries: list[dict[str, Any]] = []
        for _ in range(600):
            entries = await history(client, model_name)
            if entries[0]["kind"] == "external":
                break
            await asyncio.sleep(0.1)
        before = [(e["alias"], e["kind"], e["actor"], e["to_version"]) for e in entries]
        assert before == [
            ("production", "external", "external", "1"),
            ("staging", "manual", "token", "1"),
            ("production", "gate", "gate", "2"),
            ("production", "gate", "gate", "1"),
        ]
        assert all(e["reason"] for e in entries)

    # Every CHIMP service and Redis restart.
    redis.Redis(port=port).shutdown(nosave=True)
    proc.wait(timeout=10)
    proc = _start_redis(port, folder)
    async with api_client(settings) as client, running_worker(settings):
        after = await history(client, model_name)
        assert [e["id"] for e in after] == [e["id"] for e in entries]
        await train(client, model_name, "faces", swap=0)  # v3 vs the v1 put back by hand
        latest = await history(client, model_name)
        assert len(latest) == len(entries) + 1
        assert (latest[0]["kind"], latest[0]["to_version"]) == ("gate", "3")
        assert await aliases(client, model_name) == {"production": "3", "staging": "1"}
    redis.Redis(port=port).shutdown(nosave=True)
    proc.wait(timeout=10)


async def test_a_bad_policy_gets_422_naming_the_problem_and_a_good_one_is_kept(
    make_settings: SettingsFactory, redis_client: object, mlflow_uri: str, model_name: str
) -> None:
    settings = make_settings(mlflow_uri=mlflow_uri)
    async with api_client(settings) as client:
        default = (await client.get(f"/models/{model_name}/policy")).json()
        assert default["metric"] == "accuracy"
        assert default["min_improvement"] == 0.01
        assert "beats production by 0.01 accuracy" in default["summary"]

        metric = await client.put(f"/models/{model_name}/policy", json={"metric": "speed"})
        assert metric.status_code == 422
        assert "speed" in metric.json()["error"]
        dataset = await client.put(
            f"/models/{model_name}/policy", json={"evaluation_dataset": "nowhere"}
        )
        assert dataset.status_code == 422
        assert "nowhere" in dataset.json()["error"]
        negative = await client.put(f"/models/{model_name}/policy", json={"min_improvement": -1})
        assert negative.status_code == 422
        assert "min_improvement" in negative.text

        good = await client.put(
            f"/models/{model_name}/policy",
            json={"metric": "macro_f1", "min_improvement": 0.05, "min_label_recall": 0.2},
        )
        assert good.status_code == 200, good.text
    async with api_client(settings) as client:  # a restarted API reads it back
        kept = (await client.get(f"/models/{model_name}/policy")).json()
    assert (kept["metric"], kept["min_improvement"], kept["min_label_recall"]) == (
        "macro_f1", 0.05, 0.2
    )  # fmt: skip
    assert kept["updated_by"] == "token"
