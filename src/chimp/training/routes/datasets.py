"""``/datasets``: upload a zip, list, read a manifest, delete."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.params import Depends

from chimp.shared.datastore.archive import raising_disk_full
from chimp.shared.datastore.base import check_dataset_name
from chimp.shared.errors import (
    BadRequestError,
    ConflictError,
    DependencyUnavailableError,
    ForbiddenError,
    InsufficientStorageError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    error_responses,
)
from chimp.shared.schemas.datasets import (
    DatasetInfo,
    DatasetManifest,
    visible_to,
)
from chimp.training.dependencies import DatastoreDep, StateDep

CHUNK = 1024 * 1024

# Same rule as task user ids: what a web app's user id may look like.
_USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
UserQuery = Annotated[
    str | None,
    Query(
        pattern=_USER_ID_PATTERN,
        description="Act for this user of an application: only shared datasets and the "
        "user's own (calib-<user_id>-<n>) are listed, and only those may be written.",
    ),
]


async def _spool(upload: UploadFile, dest: Path, limit: int) -> None:
    """Copy the upload to ``dest``, refusing it as soon as it exceeds ``limit`` bytes."""
    written = 0
    async with await anyio.open_file(dest, "wb") as out:
        while chunk := await upload.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise PayloadTooLargeError(
                    f"upload larger than the limit of {limit} bytes", detail={"limit": limit}
                )
            with raising_disk_full("receiving the upload"):
                await out.write(chunk)
    if written == 0:
        raise InvalidInputError("the uploaded file is empty", detail={"field": "file"})


def _upload_name(filename: str | None) -> str:
    """The client's file name reduced to a safe single path component (else upload.zip)."""
    name = Path((filename or "").replace("\\", "/")).name.strip()
    name = "".join(c for c in name if c.isprintable() and c not in "/\0")[:120]
    return name if name not in ("", ".", "..") else "upload.zip"


def router(guard: Sequence[Depends]) -> APIRouter:
    api = APIRouter(prefix="/datasets", tags=["datasets"])

    # Datasets hold people's faces (calibration frames): reading them needs the token too.
    @api.get(
        "",
        operation_id="list_datasets",
        dependencies=list(guard),
        responses=error_responses(UnauthorizedError, DependencyUnavailableError),
    )
    async def list_datasets(
        datastore: DatastoreDep, user_id: UserQuery = None
    ) -> list[DatasetInfo]:
        datasets = await datastore.list_datasets()
        if user_id is None:
            return datasets
        return [d for d in datasets if visible_to(d.name, user_id)]

    @api.post(
        "",
        operation_id="upload_dataset",
        status_code=status.HTTP_201_CREATED,
        dependencies=list(guard),
        responses=error_responses(
            BadRequestError,
            UnauthorizedError,
            ForbiddenError,
            ConflictError,
            PayloadTooLargeError,
            InvalidInputError,
            InsufficientStorageError,
            DependencyUnavailableError,
        ),
    )
    async def upload_dataset(
        state: StateDep,
        file: Annotated[UploadFile, File(description="A zip of the dataset's files.")],
        dataset_name: Annotated[str, Form(description="Name to store the dataset under.")],
        overwrite: Annotated[bool, Form(description="Replace a dataset of that name.")] = False,
        user_id: UserQuery = None,
    ) -> DatasetInfo:
        check_dataset_name(dataset_name)  # before reading a possibly large body to disk
        if user_id is not None and not visible_to(dataset_name, user_id):
            raise ForbiddenError(f"dataset name {dataset_name!r} belongs to another user")
        limit = state.settings.datastore.max_upload_bytes
        with tempfile.TemporaryDirectory(prefix="chimp-upload-") as tmp:
            # Named as the user's file, so an error about it names the file they chose.
            zip_path = Path(tmp) / _upload_name(file.filename)
            await _spool(file, zip_path, limit)
            return await state.datastore.upload_dataset_zip(
                dataset_name, zip_path, overwrite=overwrite
            )

    @api.get(
        "/{name}",
        operation_id="get_dataset",
        dependencies=list(guard),
        responses=error_responses(
            BadRequestError, UnauthorizedError, NotFoundError, DependencyUnavailableError
        ),
    )
    async def get_dataset(name: str, datastore: DatastoreDep) -> DatasetManifest:
        return await datastore.get_manifest(name)

    @api.delete(
        "/{name}",
        operation_id="delete_dataset",
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=list(guard),
        responses=error_responses(
            BadRequestError, UnauthorizedError, NotFoundError, DependencyUnavailableError
        ),
    )
    async def delete_dataset(name: str, datastore: DatastoreDep) -> None:
        await datastore.delete_dataset(name)

    return api
