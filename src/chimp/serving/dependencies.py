"""The app's lifespan-owned state and ``Annotated`` dependencies for routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from chimp.serving.config import ServingSettings
from chimp.serving.image_pipeline import ImagePipeline
from chimp.serving.metrics import ServingMetrics
from chimp.serving.model_manager import ModelManager, Selector
from chimp.serving.monitoring import Monitor
from chimp.serving.recording import PredictionRecorder


@dataclass
class ServingState:
    settings: ServingSettings
    manager: ModelManager
    pipeline: ImagePipeline
    metrics: ServingMetrics
    monitor: Monitor

    @property
    def recorder(self) -> PredictionRecorder:
        return self.monitor.recorder


def get_state(request: Request) -> ServingState:
    """The app's state; also called directly by the lean infer routes (routes/v2.py)."""
    state: ServingState = request.app.state.serving
    return state


async def _state_dependency(request: Request) -> ServingState:
    # async: FastAPI runs plain ``def`` dependencies in its thread pool, a thread hop per request.
    return get_state(request)


StateDep = Annotated[ServingState, Depends(_state_dependency)]


async def get_manager(state: StateDep) -> ModelManager:
    return state.manager


ManagerDep = Annotated[ModelManager, Depends(get_manager)]


async def get_selector(
    alias: Annotated[
        str | None, Query(description="Registry alias; default production.", max_length=255)
    ] = None,
    version: Annotated[
        str | None, Query(description="An explicit registered version.", max_length=32)
    ] = None,
    user: Annotated[
        str | None,
        Query(
            description="Use this user's calibrated model (alias user-<id>), falling back to "
            "the alias (default production) when the user has none.",
            max_length=64,
        ),
    ] = None,
) -> Selector:
    return Selector(alias=alias, version=version, user=user)


SelectorDep = Annotated[Selector, Depends(get_selector)]
