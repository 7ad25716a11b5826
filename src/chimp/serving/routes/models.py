"""``GET /models`` (what is served) and ``POST /models/reload`` (follow the registry now)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import SecretStr

from chimp.serving.dependencies import ManagerDep
from chimp.serving.schemas import (
    LoadedVersion,
    RegistryStatus,
    ReloadReport,
    ServedModel,
    ServedModels,
)
from chimp.shared.auth import require_token
from chimp.shared.errors import UnauthorizedError, error_responses


def build_router(token: SecretStr | None) -> APIRouter:
    router = APIRouter(tags=["models"])

    @router.get("/models", operation_id="list_served_models")
    async def list_models(manager: ManagerDep) -> ServedModels:
        """Every model this process follows: which version serves each alias, what is loaded."""
        models = [
            ServedModel(
                name=state.name,
                aliases=state.serving,
                registry_aliases=state.registry_aliases,
                loaded=[
                    LoadedVersion(
                        version=m.version,
                        chimp_metadata=m.metadata is not None,
                        task=m.metadata.task if m.metadata else None,
                        labels=m.metadata.labels if m.metadata else None,
                        input=m.metadata.input if m.metadata else None,
                        providers=m.runner.model.providers,
                        batching=m.runner.batching,
                        loaded_at=m.loaded_at,
                    )
                    for m in state.loaded
                ],
            )
            for state in manager.states()
        ]
        return ServedModels(
            models=models,
            registry=RegistryStatus(ok=manager.registry_ok, error=manager.registry_error),
        )

    @router.post(
        "/models/reload",
        operation_id="reload_models",
        dependencies=[Depends(require_token(token))],
        responses=error_responses(UnauthorizedError),
    )
    async def reload(manager: ManagerDep) -> ReloadReport:
        """Re-read the registry now instead of waiting for the next poll."""
        report = await manager.refresh()
        return ReloadReport(
            registry_ok=report.registry_ok, changes=report.changes, errors=report.errors
        )

    return router
