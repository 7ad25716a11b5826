"""The web app's monitoring view: serving's report plus production moves from training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings
from tests.frontend.conftest import open_client

REPORT: dict[str, Any] = {
    "model": "emotions",
    "start": "2026-01-01T10:00:00Z",
    "end": "2026-01-01T11:00:00Z",
    "window_s": 60,
    "record_window_s": 60,
    "min_count": 30,
    "labels": ["happy", "sad"],
    "series": [],
    "versions": [],
}

HISTORY = [  # newest first, as training answers
    {"alias": "production", "from_version": "2", "to_version": "3", "at": "2026-01-01T12:00:00Z",
     "actor": "admin", "reason": "after the period"},
    {"alias": "staging", "from_version": None, "to_version": "3", "at": "2026-01-01T10:40:00Z",
     "actor": "gate", "reason": "not production"},
    {"alias": "production", "from_version": "1", "to_version": "2", "at": "2026-01-01T10:30:00Z",
     "actor": "gate", "reason": "better accuracy"},
]  # fmt: skip


def app_with(
    serving: Callable[[httpx.Request], httpx.Response],
    training: Callable[[httpx.Request], httpx.Response],
) -> FastAPI:
    settings = FrontendSettings(frontend=FrontendConfig())
    return create_app(
        settings,
        training_transport=httpx.MockTransport(training),
        serving_transport=httpx.MockTransport(serving),
    )


def serving_report(seen: list[httpx.URL]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json=REPORT)

    return answer


async def test_markers_are_the_production_moves_inside_the_period() -> None:
    asked: list[httpx.URL] = []
    app = app_with(serving_report(asked), lambda _: httpx.Response(200, json=HISTORY))
    async for client in open_client(app):
        response = await client.get(
            "/api/monitoring/models/emotions", params={"window": "120", "user": "x"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(m["from_version"], m["to_version"]) for m in body["production_moves"]] == [("1", "2")]
    assert (body["history"], body["history_note"]) == ("ok", None)
    assert body["monitoring"]["model"] == "emotions"
    # Only the period parameters serving documents are passed on.
    (url,) = asked
    assert (url.path, dict(url.params)) == ("/monitoring/models/emotions", {"window": "120"})


async def test_without_a_history_the_charts_come_without_markers() -> None:
    app = app_with(serving_report([]), lambda _: httpx.Response(404, json={"detail": "Not Found"}))
    async for client in open_client(app):
        body = (await client.get("/api/monitoring/models/emotions")).json()
    assert body["production_moves"] == []
    assert body["history"] == "unavailable"
    assert "keeps no alias history" in body["history_note"]


async def test_serving_errors_reach_the_browser_with_their_status() -> None:
    def refuse(_: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "from must be before to", "code": "bad_request"})

    app = app_with(refuse, lambda _: httpx.Response(200, json=[]))
    async for client in open_client(app):
        response = await client.get("/api/monitoring/models/emotions")
    assert (response.status_code, response.json()["error"]) == (400, "from must be before to")
