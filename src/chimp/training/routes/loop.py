"""``/loop``: what the continual loop will start, is running, or waits to retry, and why."""

from __future__ import annotations

from fastapi import APIRouter

from chimp.shared.errors import DependencyUnavailableError, error_responses
from chimp.shared.schemas.users import LoopStatus
from chimp.training.dependencies import StateDep
from chimp.training.loop import LoopDeps, plan


def router() -> APIRouter:
    api = APIRouter(tags=["loop"])

    @api.get(
        "/loop", operation_id="get_loop", responses=error_responses(DependencyUnavailableError)
    )
    async def get_loop(state: StateDep) -> LoopStatus:
        """Each person's and the shared model's pending work, with the reason in words."""
        return await plan(
            LoopDeps(
                settings=state.settings,
                arq=state.redis,
                store=state.store,
                users=state.users,
                datastore=state.datastore,
                registry=state.registry,
                catalog=state.catalog,
            )
        )

    return api
