"""``/plugins``: what can be run, with a JSON Schema of each plugin's arguments."""

from __future__ import annotations

from fastapi import APIRouter

from chimp.shared.errors import NotFoundError, error_responses
from chimp.training.dependencies import CatalogDep
from chimp.training.schemas import PluginDetail


def router() -> APIRouter:
    api = APIRouter(prefix="/plugins", tags=["plugins"])

    @api.get("", operation_id="list_plugins")
    async def list_plugins(catalog: CatalogDep) -> list[PluginDetail]:
        return [PluginDetail.of(info) for info in catalog.infos()]

    @api.get("/{name}", operation_id="get_plugin", responses=error_responses(NotFoundError))
    async def get_plugin(name: str, catalog: CatalogDep) -> PluginDetail:
        return PluginDetail.of(catalog.get(name).info)

    return api
