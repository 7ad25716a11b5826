"""Two people on one web app, against the real training API: neither sees the other's faces."""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from chimp.frontend.app import create_app as create_frontend
from chimp.frontend.config import FrontendConfig, FrontendSettings
from chimp.shared.settings import DatastoreConfig, MlflowConfig
from chimp.training.app import create_app as create_training
from chimp.training.config import TrainingConfig, TrainingSettings
from tests.frontend.fakes import ServingState, fake_serving

TOKEN = "privacy-admin-token"


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("happy/0.jpg", b"\xff\xd8face")
    return buf.getvalue()


@contextlib.asynccontextmanager
async def _browsers(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    training = create_training(
        TrainingSettings(
            _env_file=None,
            data_dir=tmp_path / "data",
            redis_url=redis_url,
            auth={"token": SecretStr(TOKEN)},
            datastore=DatastoreConfig(backend="local", local_path=tmp_path / "datastore"),
            mlflow=MlflowConfig(tracking_uri="http://127.0.0.1:9"),
            training=TrainingConfig(queue_name=f"{redis_prefix}:q", key_prefix=redis_prefix),
        )
    )
    web = create_frontend(
        FrontendSettings(
            _env_file=None, frontend=FrontendConfig(), auth={"token": SecretStr(TOKEN)}
        ),
        training_transport=httpx.ASGITransport(app=training),
        serving_transport=httpx.ASGITransport(app=fake_serving(ServingState())),
    )
    transport = httpx.ASGITransport(app=web)
    async with (
        training.router.lifespan_context(training),
        web.router.lifespan_context(web),
        httpx.AsyncClient(transport=transport, base_url="http://web") as alice,
        httpx.AsyncClient(transport=transport, base_url="http://web") as bob,
    ):
        yield alice, bob


async def _upload(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post(
        "/api/datasets",
        files={"file": ("d.zip", _zip(), "application/zip")},
        data={"dataset_name": name},
    )


@pytest.fixture
async def two_people(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with _browsers(tmp_path, redis_url, redis_prefix) as pair:
        yield pair


async def test_people_see_shared_datasets_and_their_own_calibration_only(
    two_people: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    alice, bob = two_people
    alice_prefix = (await alice.get("/api/session")).json()["calibration_dataset_prefix"]
    bob_prefix = (await bob.get("/api/session")).json()["calibration_dataset_prefix"]
    assert (await _upload(alice, "shared-faces")).status_code == 201
    assert (await _upload(alice, f"{alice_prefix}1")).status_code == 201
    assert (await _upload(bob, f"{bob_prefix}2")).status_code == 201

    alice_sees = [d["name"] for d in (await alice.get("/api/datasets")).json()]
    bob_sees = [d["name"] for d in (await bob.get("/api/datasets")).json()]
    assert sorted(alice_sees) == sorted(["shared-faces", f"{alice_prefix}1"])
    assert sorted(bob_sees) == sorted(["shared-faces", f"{bob_prefix}2"])


async def test_nobody_writes_into_or_trains_on_someone_elses_calibration(
    two_people: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    alice, bob = two_people
    alice_prefix = (await alice.get("/api/session")).json()["calibration_dataset_prefix"]
    await bob.get("/api/session")
    assert (await _upload(alice, f"{alice_prefix}1")).status_code == 201

    forged = await _upload(bob, f"{alice_prefix}9")
    assert forged.status_code == 403, forged.text
    calibrate = await bob.post("/api/calibration", json={"dataset": f"{alice_prefix}1"})
    assert calibrate.status_code in (400, 403), calibrate.text
    run = await bob.post(
        "/api/tasks/run/example",
        json={"arguments": {"greeting": "hi"}, "datasets": {"data": f"{alice_prefix}1"}},
    )
    assert run.status_code == 404, run.text
    assert "not found" in run.json()["error"]
