"""Bringing models made elsewhere in: import an ONNX file as a version, or add CHIMP metadata to
a version registered another way (e.g. plain ``mlflow.onnx.log_model``).

Both check the ONNX graph against the metadata with the rule serving applies at load
(:func:`chimp.shared.model_fit.check_fits`), so what is accepted here is what serving serves.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Body, File, Form, UploadFile, status
from fastapi.params import Depends
from pydantic import ValidationError

from chimp.shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    ValidationFailedError,
    error_responses,
)
from chimp.shared.model_fit import complete_metadata, read_graph
from chimp.shared.registry import AsyncModelRegistry
from chimp.shared.registry.names import check_model_name
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo
from chimp.shared.schemas.plugins import describe_validation_error
from chimp.training.dependencies import RegistryDep, StateDep
from chimp.training.promotion import aliases_for_new_version
from chimp.training.routes.datasets import _spool

IMPORT_TAG = "chimp.imported_from"
_ERRORS = error_responses(
    BadRequestError,
    UnauthorizedError,
    NotFoundError,
    PayloadTooLargeError,
    InvalidInputError,
    DependencyUnavailableError,
)
_METADATA_HELP = (
    "ModelMetadata as JSON: task, labels (in output order), input {height, width, channels, "
    "color, scale, mean, std, input_name, output_name}, outputs_probabilities. input_name and "
    "output_name left out: the graph's first input and output."
)


def _metadata(raw: Any, onnx_path: Path) -> ModelMetadata:
    try:
        return complete_metadata(raw, read_graph(onnx_path))
    except ValidationError as exc:
        problems = describe_validation_error(exc, "metadata")
        names = ", ".join(".".join(p["loc"]) for p in problems)
        raise ValidationFailedError(f"invalid metadata: {names}", detail=problems) from None


async def _existing_aliases(registry: AsyncModelRegistry, name: str) -> dict[str, str]:
    try:
        return await registry.aliases(name)
    except NotFoundError:
        return {}


def router(guard: Sequence[Depends]) -> APIRouter:
    api = APIRouter(prefix="/models", tags=["models"])

    @api.post(
        "/{name}/versions",
        operation_id="import_model_version",
        status_code=status.HTTP_201_CREATED,
        dependencies=list(guard),
        responses={**_ERRORS, **error_responses(ValidationFailedError)},
    )
    async def import_version(
        name: str,
        state: StateDep,
        file: Annotated[UploadFile, File(description="The ONNX model file.")],
        metadata: Annotated[str, Form(description=_METADATA_HELP)],
        promote: Annotated[
            bool, Form(description="Make it production even when there is one already.")
        ] = False,
    ) -> ModelVersionInfo:
        """Register an ONNX file made elsewhere as a new version of ``name``.

        Like a trained version it becomes ``production`` when the model has none (or with
        ``promote``), ``staging`` otherwise. Refused (422, nothing registered) when the graph
        does not fit the metadata: input name, float32 NCHW of the input spec's size, and an
        output width equal to the number of labels.
        """
        check_model_name(name)
        try:
            raw = orjson.loads(metadata)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailedError(
                f"metadata is not JSON: {exc}",
                detail=[{"loc": ["metadata"], "msg": "not valid JSON"}],
            ) from None
        registry = state.registry
        tmp = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp))
        try:
            onnx_path = tmp / "model.onnx"
            await _spool(file, onnx_path, state.settings.datastore.max_upload_bytes)
            checked = await anyio.to_thread.run_sync(_metadata, raw, onnx_path)
            existing = await _existing_aliases(registry, name)
            info = await registry.log_model_version(
                name, onnx_path, checked, tags={IMPORT_TAG: file.filename or "upload"}
            )
        finally:
            await anyio.to_thread.run_sync(shutil.rmtree, tmp, True)
        for alias in aliases_for_new_version(existing, user_id=None, promote=promote):
            await registry.set_alias(name, alias, info.version)
        return await registry.get_version(name, info.version)

    @api.put(
        "/{name}/versions/{version}/metadata",
        operation_id="set_model_version_metadata",
        dependencies=list(guard),
        responses={**_ERRORS, **error_responses(ValidationFailedError)},
    )
    async def set_metadata(
        name: str,
        version: str,
        registry: RegistryDep,
        metadata: Annotated[dict[str, Any], Body(description=_METADATA_HELP)],
    ) -> ModelVersionInfo:
        """Add (or replace) the CHIMP metadata of a version registered another way.

        Checked against the version's ONNX graph first; serving picks it up without a restart,
        and predict-image then works for the version.
        """
        tmp = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp))
        try:
            onnx_path = await registry.download_onnx(name, version, tmp)
            checked = await anyio.to_thread.run_sync(_metadata, metadata, onnx_path)
            return await registry.set_metadata(name, version, checked, onnx_path=onnx_path)
        finally:
            await anyio.to_thread.run_sync(shutil.rmtree, tmp, True)

    return api
