"""Liveness, readiness and Prometheus ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import APIRouter, Response

from chimp.serving.dependencies import StateDep
from chimp.serving.model_manager import ModelManager
from chimp.shared.health import Check, health_router


def readiness_checks(manager: ModelManager) -> Mapping[str, Check]:
    """One check per required model: ready once its production version is loaded.

    A model that is loaded stays ready while MLflow is down; one whose production version was
    never loaded is not ready (the check names why). A model with no production version yet
    is ready: there is nothing to wait for.
    """
    checks: dict[str, Check] = {}
    for name, reason in manager.readiness().items():

        async def check(reason: str | None = reason) -> None:
            if reason is not None:
                raise RuntimeError(reason)

        checks[f"model:{name}"] = check
    return checks


def build_router(manager: Callable[[], ModelManager]) -> APIRouter:
    """``manager`` returns the lifespan's manager when a probe arrives."""
    router = health_router(lambda: readiness_checks(manager()))

    @router.get(
        "/metrics",
        operation_id="metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def metrics(state: StateDep) -> Response:
        return Response(
            state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return router
