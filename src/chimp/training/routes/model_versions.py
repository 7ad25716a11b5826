"""Bringing models made elsewhere in: import an ONNX file as a version, or add CHIMP metadata to
a version registered another way (e.g. plain ``mlflow.onnx.log_model``).

Both check the ONNX graph against the metadata with the rule serving applies at load
(:func:`chimp.shared.model_fit.check_fits`), so what is accepted here is what serving serves.
An imported version then goes through the evaluation gate like a trained one
(:func:`chimp.training.gate.register_and_gate`).
"""

from __future__ import annotations

import functools
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
from pydantic import BaseModel, Field, ValidationError

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
from chimp.shared.model_fit import check_fits, complete_metadata, read_graph
from chimp.shared.registry.names import check_model_name
from chimp.shared.schemas.continual import Decision
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo
from chimp.shared.schemas.plugins import describe_validation_error
from chimp.training.dependencies import RegistryDep, StateDep
from chimp.training.gate import register_and_gate
from chimp.training.policy import get_policy
from chimp.training.routes.datasets import _spool
from chimp.training.task_gate import policy_dataset

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
    """The completed metadata, refused (422) before any other work when the graph does not fit."""
    graph = read_graph(onnx_path)
    try:
        metadata = complete_metadata(raw, graph)
    except ValidationError as exc:
        problems = describe_validation_error(exc, "metadata")
        names = ", ".join(".".join(p["loc"]) for p in problems)
        raise ValidationFailedError(f"invalid metadata: {names}", detail=problems) from None
    check_fits(graph, metadata)
    return metadata


class ImportedVersion(BaseModel):
    version: ModelVersionInfo = Field(description="The new version, with its aliases.")
    decision: Decision = Field(description="The evaluation gate's verdict, as for a trained one.")


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
            bool,
            Form(description="False: judge it, but never move production past the champion."),
        ] = True,
    ) -> ImportedVersion:
        """Register an ONNX file made elsewhere as a new version of ``name``, then gate it.

        Refused (422, nothing registered) when the graph does not fit the metadata: input
        name, float32 NCHW of the input spec's size, and an output width equal to the number
        of labels. Then the evaluation gate decides, as for a trained version: ``production``
        for a first version, or when it beats the champion on the policy's evaluation data;
        ``staging`` otherwise (the reason is in ``decision``).
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
            policy = await anyio.to_thread.run_sync(get_policy, state.records, name)
            evaluation = await policy_dataset(state.datastore, policy, tmp)
            gate = functools.partial(
                register_and_gate,
                registry.sync,
                state.records,
                name,
                onnx_path,
                checked,
                tags={IMPORT_TAG: file.filename or "upload"},
                policy=policy,
                evaluation_dataset=evaluation,
                promote=promote,
                work_dir=tmp,
            )
            info, decision = await anyio.to_thread.run_sync(gate, limiter=registry.limiter)
        finally:
            await anyio.to_thread.run_sync(shutil.rmtree, tmp, True)
        return ImportedVersion(version=info, decision=decision)

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
