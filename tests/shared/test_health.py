import asyncio

import httpx
import pytest
from fastapi import FastAPI

from chimp.shared import health
from chimp.shared.health import Check, health_router


async def ok() -> None:
    return None


async def redis_down() -> None:
    raise ConnectionError("connection refused to 127.0.0.1:1")


async def hangs() -> None:
    await asyncio.sleep(60)


def app_with(checks: dict[str, Check]) -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(lambda: checks))
    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get(path)


async def test_ready_when_all_dependencies_answer() -> None:
    response = await get(app_with({"redis": ok, "mlflow": ok}), "/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_not_ready_names_the_dependency_that_is_down() -> None:
    response = await get(app_with({"redis": redis_down, "mlflow": ok}), "/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"] == {"ok": False, "error": "connection refused to 127.0.0.1:1"}
    assert checks["mlflow"]["ok"] is True


async def test_live_and_ping_do_not_touch_dependencies() -> None:
    app = app_with({"redis": redis_down})
    assert (await get(app, "/health/live")).status_code == 200
    ping = await get(app, "/ping")
    assert ping.text == "pong"


async def test_a_hanging_dependency_reports_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.2)
    response = await get(app_with({"mlflow": hangs}), "/health/ready")
    assert response.status_code == 503
    assert "no answer" in response.json()["checks"]["mlflow"]["error"]
