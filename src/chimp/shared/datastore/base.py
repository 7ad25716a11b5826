"""The datastore interface: one async API over S3 and a local folder.

Datasets are uploaded as zip files and stored unpacked under ``<dataset>/<path>``. A dataset
is visible only once its marker object ``<dataset>/.chimp-dataset.json`` is written, which
happens last, so a failed upload never shows up half-written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel, ConfigDict, ValidationError

from chimp.shared.datastore.archive import MARKER_NAME, UnpackLimits, safe_relative_path
from chimp.shared.errors import BadRequestError, InvalidInputError
from chimp.shared.schemas.datasets import DatasetInfo, DatasetManifest, is_valid_dataset_name

__all__ = [
    "MARKER_NAME",
    "DatasetMarker",
    "Datastore",
    "UnpackLimits",
    "check_dataset_name",
    "checked_files",
]


def check_dataset_name(name: str) -> None:
    """Raise ``BadRequestError`` unless ``name`` is a valid dataset name."""
    if not is_valid_dataset_name(name):
        raise BadRequestError(
            f"invalid dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def checked_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """``files`` keyed by safe relative paths; the marker and working files are refused."""
    checked: dict[str, bytes] = {}
    for path, data in files.items():
        rel = safe_relative_path(path)
        if rel.name == MARKER_NAME or rel.name.startswith(".part-"):
            raise InvalidInputError(f"{path!r} is a reserved file name in a dataset")
        checked[rel.as_posix()] = data
    return checked


class DatasetMarker(BaseModel):
    """The content of ``<dataset>/.chimp-dataset.json``."""

    model_config = ConfigDict(extra="ignore")

    created_at: datetime
    files: int
    size: int

    def info(self, name: str) -> DatasetInfo:
        return DatasetInfo(
            name=name, files=self.files, size_bytes=self.size, created_at=self.created_at
        )

    @classmethod
    def parse(cls, raw: bytes) -> DatasetMarker | None:
        """``None`` for an unreadable marker, which callers treat as a missing dataset."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError:
            return None


class Datastore(ABC):
    """Store, list, fetch and delete datasets. Implementations: local folder, S3."""

    @abstractmethod
    async def upload_dataset_zip(
        self, name: str, zip_path: Path, *, overwrite: bool = False
    ) -> DatasetInfo:
        """Safely unpack ``zip_path`` and store it as dataset ``name``.

        Raises ``BadRequestError`` for a bad name, ``ConflictError`` when it exists and
        ``overwrite`` is false, ``InvalidInputError`` for a broken or hostile zip (path
        traversal, absolute paths, symlinks, too big, too many files). Nothing is left behind
        on failure.
        """

    @abstractmethod
    async def list_datasets(self) -> list[DatasetInfo]: ...

    @abstractmethod
    async def put_files(self, name: str, files: Mapping[str, bytes]) -> DatasetInfo:
        """Add (or replace) a few small files in dataset ``name``, creating it when missing.

        For data that grows one item at a time (a user's corrections). Paths are relative and
        checked like zip members. The files are written first and the marker, recounted, last,
        so a reader never sees a marker announcing files that are not there yet.
        """

    @abstractmethod
    async def get_manifest(self, name: str) -> DatasetManifest:
        """Raises ``NotFoundError`` when the dataset does not exist."""

    @abstractmethod
    async def download_dataset(self, name: str, dest: Path) -> Path:
        """Download every file of ``name`` into ``dest`` (created); returns ``dest``."""

    @abstractmethod
    async def download_files(self, name: str, paths: Sequence[str], dest: Path) -> Path:
        """Download only ``paths`` (as listed in the manifest) of ``name`` into ``dest``.

        For a sample of a large dataset (replay images) without fetching all of it.
        """

    @abstractmethod
    async def delete_dataset(self, name: str) -> None:
        """Raises ``NotFoundError`` when the dataset does not exist."""

    @abstractmethod
    async def check(self) -> None:
        """Raise ``DependencyUnavailableError`` when the backend cannot be reached."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect eagerly (clients are otherwise made on first use); idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients; the default backend holds none."""

    async def __aenter__(self) -> Datastore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
