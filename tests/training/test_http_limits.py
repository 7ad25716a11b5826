"""Edge guards on the real apps: bodies are refused while they arrive, CORS is closed by default."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from chimp.frontend.app import create_app as create_frontend
from chimp.frontend.config import FrontendSettings
from chimp.shared.http_limits import DEFAULT_MAX_BODY_BYTES
from chimp.shared.settings import CorsConfig
from tests.training.conftest import SettingsFactory, api_client

CHUNK = 64 * 1024


class Pulled:
    """A streamed body that counts how much of it the server actually read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += CHUNK
            yield b"x" * CHUNK


async def test_declared_oversize_body_is_refused_before_reading(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    settings = make_settings()
    settings.datastore.max_upload_bytes = 100_000
    body = Pulled(10 * 1024 * 1024)
    async with api_client(settings) as client:
        response = await client.post(
            "/datasets",
            content=body,
            headers={
                "content-type": "multipart/form-data; boundary=x",
                "content-length": str(body.total),
            },
        )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert response.json()["detail"]["limit"] > 100_000
    assert body.sent <= CHUNK  # nothing past what the client pushed before the answer


async def test_streamed_oversize_body_is_cut_off_at_the_limit(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    body = Pulled(50 * 1024 * 1024)
    async with api_client(make_settings()) as client:
        response = await client.post(
            "/tasks/run/example", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 413, response.text
    assert f"limit of {DEFAULT_MAX_BODY_BYTES} bytes" in response.json()["error"]
    assert body.sent <= DEFAULT_MAX_BODY_BYTES + 2 * CHUNK


async def test_honest_bodies_pass(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    async with api_client(make_settings()) as client:
        response = await client.post("/tasks/run/example", json={"arguments": {"greeting": "x"}})
    assert response.status_code == 202


PREFLIGHT = {"origin": "https://evil.example", "access-control-request-method": "POST"}


@pytest.mark.parametrize("service", ["training", "frontend"])
async def test_cross_origin_calls_are_closed_by_default(
    service: str, make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    if service == "training":
        async with api_client(make_settings()) as client:
            response = await client.options("/datasets", headers=PREFLIGHT)
    else:
        app = create_frontend(FrontendSettings(_env_file=None))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            response = await client.options("/api/datasets", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in response.headers


async def test_configured_origins_are_let_in_and_others_not(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    settings = make_settings()
    settings.cors = CorsConfig(allow_origins=["https://app.example"])
    async with api_client(settings) as client:
        allowed = await client.options(
            "/datasets", headers={**PREFLIGHT, "origin": "https://app.example"}
        )
        refused = await client.options("/datasets", headers=PREFLIGHT)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in refused.headers
