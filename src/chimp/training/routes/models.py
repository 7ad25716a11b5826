"""``/models``: registered models, their versions, files, and moving aliases.

Promotion and rollback are the same operation: point an alias (``production``, ``staging``,
``user-<id>``) at a version. The training service is the one owner of alias moves.
"""

from __future__ import annotations

import mimetypes
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, status
from fastapi.params import Depends
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from chimp.shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    NotFoundError,
    UnauthorizedError,
    error_responses,
)
from chimp.shared.schemas.models import ModelVersionInfo, RegisteredModelInfo
from chimp.training.dependencies import RegistryDep
from chimp.training.promotion import check_alias
from chimp.training.schemas import AliasUpdate, ArtifactEntry

_READ_ERRORS = error_responses(BadRequestError, NotFoundError, DependencyUnavailableError)
_FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}, "image/png": {}}}
}
_WRITE_ERRORS = error_responses(
    BadRequestError, UnauthorizedError, NotFoundError, DependencyUnavailableError
)


def router(guard: Sequence[Depends]) -> APIRouter:
    api = APIRouter(prefix="/models", tags=["models"])

    @api.get("", operation_id="list_models", responses=error_responses(DependencyUnavailableError))
    async def list_models(registry: RegistryDep) -> list[RegisteredModelInfo]:
        return await registry.list_models()

    @api.get("/{name}/versions", operation_id="list_model_versions", responses=_READ_ERRORS)
    async def list_versions(name: str, registry: RegistryDep) -> list[ModelVersionInfo]:
        """Every version, newest first, with its aliases, metrics and metadata."""
        return await registry.list_versions(name)

    @api.get("/{name}/versions/{version}", operation_id="get_model_version", responses=_READ_ERRORS)
    async def get_version(name: str, version: str, registry: RegistryDep) -> ModelVersionInfo:
        return await registry.get_version(name, version)

    @api.post(
        "/{name}/aliases/{alias}",
        operation_id="set_model_alias",
        dependencies=list(guard),
        responses=_WRITE_ERRORS,
    )
    async def set_alias(
        name: str, alias: str, body: AliasUpdate, registry: RegistryDep
    ) -> ModelVersionInfo:
        """Promote (or roll back): point ``alias`` at ``body.version``; serving follows it."""
        check_alias(alias)
        await registry.set_alias(name, alias, body.version)
        return await registry.get_version(name, body.version)

    @api.delete(
        "/{name}/aliases/{alias}",
        operation_id="delete_model_alias",
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=list(guard),
        responses=_WRITE_ERRORS,
    )
    async def delete_alias(name: str, alias: str, registry: RegistryDep) -> None:
        check_alias(alias)
        await registry.delete_alias(name, alias)

    @api.get(
        "/{name}/versions/{version}/artifacts",
        operation_id="list_model_artifacts",
        responses=_READ_ERRORS,
    )
    async def list_artifacts(name: str, version: str, registry: RegistryDep) -> list[ArtifactEntry]:
        """Files stored with the version: the ONNX model, confusion matrix, curves."""
        files = await registry.list_version_artifacts(name, version)
        return [ArtifactEntry(path=f.path, size=f.size) for f in files]

    @api.get(
        "/{name}/versions/{version}/artifacts/{path:path}",
        operation_id="get_model_artifact",
        response_class=FileResponse,
        responses={**_FILE_RESPONSE, **_READ_ERRORS},
    )
    async def get_artifact(
        name: str, version: str, path: str, registry: RegistryDep
    ) -> FileResponse:
        """One stored file, e.g. ``confusion_matrix.png`` for the web app."""
        tmp = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp))
        try:
            local = await registry.download_version_artifact(name, version, path, tmp)
        except BaseException:
            await anyio.to_thread.run_sync(shutil.rmtree, tmp, True)
            raise
        media_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
        return FileResponse(
            local,
            media_type=media_type,
            filename=local.name,
            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
        )

    return api
