"""``/models``: registered models, their versions and files, aliases, policy, history, rollback.

The training service is the one owner of alias moves (``production``, ``staging``,
``user-<id>``): the evaluation gate moves them after training, a person forces a move here, a
rollback follows the history. Every move is appended to the history (docs/continual.md).
"""

from __future__ import annotations

import mimetypes
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, status
from fastapi.params import Depends
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from chimp.shared.errors import (
    BadRequestError,
    ConflictError,
    DependencyUnavailableError,
    NotFoundError,
    UnauthorizedError,
    ValidationFailedError,
    error_responses,
)
from chimp.shared.registry import PRODUCTION, AsyncModelRegistry, check_chimp_alias
from chimp.shared.registry.names import check_model_name
from chimp.shared.schemas.continual import (
    HistoryPage,
    PolicyInfo,
    PromotionPolicy,
    RollbackResult,
)
from chimp.shared.schemas.models import ModelVersionInfo, RegisteredModelInfo
from chimp.training.dependencies import (
    ActorDep,
    CatalogDep,
    DatastoreDep,
    RecordsDep,
    RegistryDep,
)
from chimp.training.history import history_page, move_alias, remove_alias
from chimp.training.plugins.discovery import PluginCatalog
from chimp.training.policy import (
    check_policy,
    policy_info,
    read_policy,
    reference_version,
    save_policy,
)
from chimp.training.records import ModelRecords
from chimp.training.rollback import rollback_production
from chimp.training.schemas import AliasUpdate, ArtifactEntry

_READ_ERRORS = error_responses(BadRequestError, NotFoundError, DependencyUnavailableError)
_FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}, "image/png": {}}}
}
_WRITE_ERRORS = error_responses(
    BadRequestError, UnauthorizedError, NotFoundError, DependencyUnavailableError
)
_POLICY_ERRORS = error_responses(
    BadRequestError, UnauthorizedError, ValidationFailedError, DependencyUnavailableError
)
_ROLLBACK_ERRORS = error_responses(
    BadRequestError, UnauthorizedError, NotFoundError, ConflictError, DependencyUnavailableError
)


def _policy_view(
    registry: AsyncModelRegistry, records: ModelRecords, catalog: PluginCatalog, name: str
) -> PolicyInfo:
    """The stored policy of ``name`` and what it means for the model's labels and plugin."""
    stored = read_policy(records, name)
    reference = reference_version(registry.sync, name)
    labels = plugin = None
    if reference is not None and reference.metadata is not None:
        labels, plugin = reference.metadata.labels, reference.metadata.plugin
    gated = True
    if plugin is not None and plugin in catalog.plugins:
        gated = catalog.get(plugin).info.comparable_models
    return policy_info(name, stored, labels=labels, gated=gated, plugin=plugin)


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
        name: str,
        alias: str,
        body: AliasUpdate,
        registry: RegistryDep,
        records: RecordsDep,
        actor: ActorDep,
    ) -> ModelVersionInfo:
        """Point ``alias`` at ``body.version`` past the gate; serving follows it.

        Moving ``production`` this way is a *forced* promotion, recorded as such with who did
        it. Rolling back is ``POST /models/{name}/rollback``.
        """
        check_chimp_alias(alias)
        forced = alias == PRODUCTION
        why = body.reason or (
            f"forced into production by {actor}, past the gate"
            if forced
            else f"{alias} set by {actor}"
        )
        await anyio.to_thread.run_sync(
            lambda: move_alias(
                registry.sync,
                records,
                name,
                alias,
                body.version,
                kind="forced" if forced else "manual",
                actor=actor,
                reason=why,
            ),
            limiter=registry.limiter,
        )
        return await registry.get_version(name, body.version)

    @api.delete(
        "/{name}/aliases/{alias}",
        operation_id="delete_model_alias",
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=list(guard),
        responses=_WRITE_ERRORS,
    )
    async def delete_alias(
        name: str, alias: str, registry: RegistryDep, records: RecordsDep, actor: ActorDep
    ) -> None:
        check_chimp_alias(alias)
        await anyio.to_thread.run_sync(
            lambda: remove_alias(
                registry.sync, records, name, alias, actor=actor, reason=f"removed by {actor}"
            ),
            limiter=registry.limiter,
        )

    @api.get("/{name}/policy", operation_id="get_model_policy", responses=_READ_ERRORS)
    async def get_policy(
        name: str, registry: RegistryDep, records: RecordsDep, catalog: CatalogDep
    ) -> PolicyInfo:
        """How a new version of ``name`` earns production (defaults until one is stored)."""
        check_model_name(name)
        return await anyio.to_thread.run_sync(
            _policy_view, registry, records, catalog, name, limiter=registry.limiter
        )

    @api.put(
        "/{name}/policy",
        operation_id="put_model_policy",
        dependencies=list(guard),
        responses=_POLICY_ERRORS,
    )
    async def put_policy(
        name: str,
        body: PromotionPolicy,
        registry: RegistryDep,
        records: RecordsDep,
        catalog: CatalogDep,
        datastore: DatastoreDep,
        actor: ActorDep,
    ) -> PolicyInfo:
        """Store the policy of ``name``; 422 naming an unknown metric or dataset."""
        check_model_name(name)
        reference = await anyio.to_thread.run_sync(
            reference_version, registry.sync, name, limiter=registry.limiter
        )
        labels = None
        if reference is not None and reference.metadata is not None:
            labels = reference.metadata.labels
        stored = {d.name for d in await datastore.list_datasets()}
        check_policy(body, labels=labels, stored_datasets=stored)
        await anyio.to_thread.run_sync(
            lambda: save_policy(records, name, body, actor=actor), limiter=registry.limiter
        )
        return await anyio.to_thread.run_sync(
            _policy_view, registry, records, catalog, name, limiter=registry.limiter
        )

    @api.get("/{name}/history", operation_id="get_model_history", responses=_READ_ERRORS)
    async def get_history(
        name: str,
        registry: RegistryDep,
        records: RecordsDep,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> HistoryPage:
        """Every alias move of ``name``, newest first: who, why, from and to which version."""
        check_model_name(name)
        return await anyio.to_thread.run_sync(
            lambda: history_page(records, name, offset=offset, limit=limit),
            limiter=registry.limiter,
        )

    @api.post(
        "/{name}/rollback",
        operation_id="rollback_model",
        dependencies=list(guard),
        responses=_ROLLBACK_ERRORS,
    )
    async def rollback(
        name: str, registry: RegistryDep, records: RecordsDep, actor: ActorDep
    ) -> RollbackResult:
        """Move ``production`` to the previous champion in the history (409: there is none)."""
        check_model_name(name)
        return await anyio.to_thread.run_sync(
            lambda: rollback_production(registry.sync, records, name, actor=actor),
            limiter=registry.limiter,
        )

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
