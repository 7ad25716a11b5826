"""The datastore interface: one async API over S3 and a local folder.

Datasets are uploaded as zip files and stored unpacked under ``<dataset>/<path>``. A dataset
is visible only once its marker object ``<dataset>/.chimp-dataset.json`` is written, which
happens last, so a failed upload never shows up half-written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType

from chimp.shared.schemas.datasets import DatasetInfo, DatasetManifest


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
    async def get_manifest(self, name: str) -> DatasetManifest:
        """Raises ``NotFoundError`` when the dataset does not exist."""

    @abstractmethod
    async def download_dataset(self, name: str, dest: Path) -> Path:
        """Download every file of ``name`` into ``dest`` (created); returns ``dest``."""

    @abstractmethod
    async def delete_dataset(self, name: str) -> None:
        """Raises ``NotFoundError`` when the dataset does not exist."""

    @abstractmethod
    async def check(self) -> None:
        """Raise ``DependencyUnavailableError`` when the backend cannot be reached."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients; the default backend holds none."""

    async def __aenter__(self) -> Datastore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
