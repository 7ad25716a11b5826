"""The web app's monitoring view: serving's report plus production moves from training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chimp.frontend import monitoring
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


async def test_history_pages_are_read_back_to_the_start_of_the_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(monitoring, "HISTORY_PAGE_SIZE", 2)
    # Newest first: two moves after the period, three in it (10:50, 10:30, 10:10), two before.
    times = ["12:00", "11:30", "10:50", "10:30", "10:10", "09:30", "09:00"]
    entries = [
        {"alias": "production", "from_version": str(i + 1), "to_version": str(i + 2),
         "at": f"2026-01-01T{t}:00Z", "actor": "gate", "reason": "better"}
        for i, t in enumerate(reversed(times))
    ][::-1]  # fmt: skip
    pages: list[dict[str, str]] = []

    def history(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        pages.append(params)
        offset, limit = int(params["offset"]), int(params["limit"])
        page = {"entries": entries[offset : offset + limit], "total": len(entries)}
        return httpx.Response(200, json={"model": "emotions", **page, "offset": offset})

    async for client in open_client(app_with(serving_report([]), history)):
        body = (await client.get("/api/monitoring/models/emotions")).json()
    assert [m["at"][11:16] for m in body["production_moves"]] == ["10:10", "10:30", "10:50"]
    # Three pages reach 10:10 and 09:30; the last page (09:00) is never asked for.
    assert [p["offset"] for p in pages] == ["0", "2", "4"]
