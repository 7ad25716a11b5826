"""Guarantee: serving under sustained load while ``production`` moves back and forth answers
every request (zero failures), each from one of the versions that were in production."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from chimp.shared.registry import ModelRegistry
from chimp.shared.registry.names import PRODUCTION
from tests.serving.conftest import register_version, serve, serving_settings

CLIENTS = 4


async def _served(client: httpx.AsyncClient, version: str) -> None:
    for _ in range(300):
        listing = (await client.get("/models")).json()
        if listing["models"] and listing["models"][0]["aliases"].get(PRODUCTION) == version:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"version {version} never served")


async def test_no_request_fails_while_production_moves_under_load(
    registry: ModelRegistry,
    model_name: str,
    mlflow_uri: str,
    tmp_path: Path,
    astronaut_jpeg: bytes,
) -> None:
    first = register_version(registry, model_name, tmp_path, seed=1)
    second = register_version(registry, model_name, tmp_path, seed=2, alias=None)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = asyncio.Event()
    predict = f"/models/{model_name}/predict-image"
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        await _served(client, first.version)

        async def hammer() -> None:
            while not stop.is_set():
                response = await client.post(predict, content=astronaut_jpeg)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.add(response.json()["model"]["version"])

        load = [asyncio.create_task(hammer()) for _ in range(CLIENTS)]
        for target in (second, first, second):
            await asyncio.to_thread(registry.set_alias, model_name, PRODUCTION, target.version)
            await _served(client, target.version)
        stop.set()
        await asyncio.gather(*load)
    assert statuses, "no request was made"
    assert [s for s in statuses if s != 200] == []
    assert versions == {first.version, second.version}
