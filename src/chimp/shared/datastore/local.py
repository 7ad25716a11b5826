"""The local-folder datastore, the embedded default.

Layout: ``<root>/<dataset>/<path>`` plus ``<root>/<dataset>/.chimp-dataset.json``. An upload is
unpacked into ``<root>/.upload-<id>`` (same file system, so the final step is a rename) and
renamed into place whole; a delete renames the dataset to ``<root>/.delete-<id>`` before
removing it. Readers therefore see a dataset completely or not at all. Dataset names start
with a letter or digit, so the dot-prefixed working folders never look like datasets.

All file system work runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from chimp.shared.datastore.archive import (
    MARKER_NAME,
    UnpackLimits,
    raising_disk_full,
    unpack_zip,
)
from chimp.shared.datastore.base import (
    DatasetMarker,
    Datastore,
    check_dataset_name,
    checked_files,
)
from chimp.shared.errors import ConflictError, DependencyUnavailableError, NotFoundError
from chimp.shared.schemas.datasets import (
    DatasetEntry,
    DatasetInfo,
    DatasetManifest,
    is_valid_dataset_name,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_THREADS = 4
_STALE_UPLOAD_SECONDS = 6 * 3600


class LocalDatastore(Datastore):
    def __init__(self, root: Path, limits: UnpackLimits) -> None:
        self.root = root
        self._limits = limits
        self._limiter = anyio.CapacityLimiter(_THREADS)

    async def open(self) -> None:
        await self._run(self._sweep)

    async def _run(self, func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)

    # -- public API ------------------------------------------------------------------------

    async def upload_dataset_zip(
        self, name: str, zip_path: Path, *, overwrite: bool = False
    ) -> DatasetInfo:
        check_dataset_name(name)
        return await self._run(partial(self._upload, name, zip_path, overwrite))

    async def list_datasets(self) -> list[DatasetInfo]:
        return await self._run(self._list)

    async def get_manifest(self, name: str) -> DatasetManifest:
        check_dataset_name(name)
        return await self._run(partial(self._manifest, name))

    async def download_dataset(self, name: str, dest: Path) -> Path:
        check_dataset_name(name)
        return await self._run(partial(self._download, name, dest))

    async def download_files(self, name: str, paths: Sequence[str], dest: Path) -> Path:
        check_dataset_name(name)
        checked = list(checked_files(dict.fromkeys(paths, b"")))
        return await self._run(partial(self._download_files, name, checked, dest))

    async def delete_dataset(self, name: str) -> None:
        check_dataset_name(name)
        await self._run(partial(self._delete, name))

    async def check(self) -> None:
        await self._run(self._check)

    async def put_files(self, name: str, files: Mapping[str, bytes]) -> DatasetInfo:
        check_dataset_name(name)
        checked = checked_files(files)
        return await self._run(partial(self._put_files, name, checked))

    # -- blocking implementations (worker threads) -----------------------------------------

    def _marker(self, name: str) -> DatasetMarker | None:
        try:
            raw = (self.root / name / MARKER_NAME).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return DatasetMarker.parse(raw)

    def _require(self, name: str) -> DatasetMarker:
        marker = self._marker(name)
        if marker is None:
            raise NotFoundError(f"dataset {name!r} not found")
        return marker

    def _upload(self, name: str, zip_path: Path, overwrite: bool) -> DatasetInfo:
        self.root.mkdir(parents=True, exist_ok=True)
        if not overwrite and self._marker(name) is not None:
            raise ConflictError(f"dataset {name!r} already exists")
        staging = self.root / f".upload-{uuid.uuid4().hex}"
        try:
            unpacked = unpack_zip(zip_path, staging, self._limits)
            marker = DatasetMarker(
                created_at=datetime.now(UTC), files=unpacked.files, size=unpacked.size_bytes
            )
            with raising_disk_full("storing the dataset"):
                (staging / MARKER_NAME).write_text(marker.model_dump_json(), encoding="utf-8")
            self._move_into_place(name, staging, overwrite)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return marker.info(name)

    def _move_into_place(self, name: str, staging: Path, overwrite: bool) -> None:
        final = self.root / name
        if final.exists():
            # Checked again here: another upload of the same name may have finished meanwhile.
            if not overwrite and self._marker(name) is not None:
                raise ConflictError(f"dataset {name!r} already exists")
            self._remove(final)
        try:
            staging.rename(final)
        except OSError as exc:
            # Renaming onto a non-empty folder fails: a concurrent upload won the race.
            raise ConflictError(f"dataset {name!r} was created by another upload") from exc

    def _remove(self, folder: Path) -> None:
        doomed = self.root / f".delete-{uuid.uuid4().hex}"
        folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def _list(self) -> list[DatasetInfo]:
        if not self.root.is_dir():
            return []
        infos: list[DatasetInfo] = []
        for child in sorted(self.root.iterdir()):
            if not is_valid_dataset_name(child.name):
                continue
            marker = self._marker(child.name)
            if marker is not None:
                infos.append(marker.info(child.name))
        return infos

    def _entries(self, name: str) -> list[DatasetEntry]:
        base = self.root / name
        entries: list[DatasetEntry] = []
        for folder, _, files in os.walk(base):
            for file_name in files:
                path = Path(folder, file_name)
                rel = path.relative_to(base).as_posix()
                # ``.part-*`` files are put_files writes still in flight.
                if rel != MARKER_NAME and not file_name.startswith(".part-"):
                    entries.append(DatasetEntry(path=rel, size=path.stat().st_size))
        return sorted(entries, key=lambda entry: entry.path)

    def _manifest(self, name: str) -> DatasetManifest:
        info = self._require(name).info(name)
        try:
            entries = self._entries(name)
        except FileNotFoundError as exc:
            raise NotFoundError(f"dataset {name!r} was deleted while being read") from exc
        return DatasetManifest(**info.model_dump(), entries=entries)

    def _download(self, name: str, dest: Path) -> Path:
        self._require(name)
        source = self.root / name
        dest.mkdir(parents=True, exist_ok=True)
        try:
            for entry in self._entries(name):
                target = dest / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / entry.path, target)
        except FileNotFoundError as exc:
            if (source / MARKER_NAME).exists():
                raise  # the dataset is intact: the problem is on the destination side
            raise NotFoundError(f"dataset {name!r} was deleted while being read") from exc
        return dest

    def _download_files(self, name: str, paths: list[str], dest: Path) -> Path:
        self._require(name)
        for rel in paths:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(self.root / name / rel, target)
            except FileNotFoundError as exc:
                raise NotFoundError(f"dataset {name!r} has no file {rel!r}") from exc
        return dest

    def _delete(self, name: str) -> None:
        self._require(name)
        try:
            self._remove(self.root / name)
        except FileNotFoundError as exc:
            raise NotFoundError(f"dataset {name!r} not found") from exc

    def _write_atomically(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial_file = target.with_name(f".part-{uuid.uuid4().hex}")
        try:
            partial_file.write_bytes(data)
            partial_file.replace(target)
        except BaseException:
            partial_file.unlink(missing_ok=True)
            raise

    def _put_files(self, name: str, files: dict[str, bytes]) -> DatasetInfo:
        base = self.root / name
        previous = self._marker(name)
        for rel, data in files.items():
            self._write_atomically(base / rel, data)
        entries = self._entries(name)
        marker = DatasetMarker(
            created_at=previous.created_at if previous else datetime.now(UTC),
            files=len(entries),
            size=sum(e.size for e in entries),
        )
        self._write_atomically(base / MARKER_NAME, marker.model_dump_json().encode())
        return marker.info(name)

    def _sweep(self) -> None:
        """Remove what a process killed mid-upload or mid-delete left in the root.

        Doomed folders go at once; staging folders only once they are old enough that no
        live upload (in this or another process sharing the folder) can still be using them.
        """
        if not self.root.is_dir():
            return
        cutoff = time.time() - _STALE_UPLOAD_SECONDS
        for child in self.root.iterdir():
            try:
                doomed = child.name.startswith(".delete-") or (
                    child.name.startswith(".upload-") and child.stat().st_mtime < cutoff
                )
            except FileNotFoundError:
                continue
            if doomed:
                logger.info("removing leftover %s", child)
                shutil.rmtree(child, ignore_errors=True)

    def _check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise DependencyUnavailableError(
                f"datastore folder {self.root} is not writable: {exc}"
            ) from exc
