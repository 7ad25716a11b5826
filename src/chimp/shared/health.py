"""Liveness and readiness with per-dependency checks.

A service lists its dependencies as named async checks; ``/health/ready`` runs them all
concurrently and answers 503 naming each one that failed, e.g. ``{"redis": "..."}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

Check = Callable[[], Awaitable[None]]
ChecksProvider = Callable[[], Mapping[str, Check]]

CHECK_TIMEOUT_S = 3.0


class DependencyStatus(BaseModel):
    ok: bool
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, DependencyStatus]


async def _run_check(check: Check) -> DependencyStatus:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
    except TimeoutError:
        return DependencyStatus(ok=False, error=f"no answer within {CHECK_TIMEOUT_S:.0f}s")
    except Exception as exc:  # a check's failure is data, not an error of ours
        return DependencyStatus(ok=False, error=str(exc) or type(exc).__name__)
    return DependencyStatus(ok=True)


async def run_checks(checks: Mapping[str, Check]) -> HealthReport:
    names = list(checks)
    results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
    statuses = dict(zip(names, results, strict=True))
    ok = all(s.ok for s in statuses.values())
    return HealthReport(status="ok" if ok else "unavailable", checks=statuses)


def health_router(checks: ChecksProvider) -> APIRouter:
    """``/ping``, ``/health/live`` and ``/health/ready`` for a service."""
    router = APIRouter(tags=["health"])

    @router.get("/ping", response_class=PlainTextResponse, operation_id="ping")
    async def ping() -> str:
        return "pong"

    @router.get("/health/live", operation_id="health_live")
    async def live() -> HealthReport:
        return HealthReport(status="ok", checks={})

    @router.get(
        "/health/ready",
        operation_id="health_ready",
        responses={503: {"model": HealthReport, "description": "a dependency is down"}},
    )
    async def ready() -> JSONResponse:
        report = await run_checks(checks())
        status = 200 if report.status == "ok" else 503
        return JSONResponse(status_code=status, content=report.model_dump(mode="json"))

    return router
