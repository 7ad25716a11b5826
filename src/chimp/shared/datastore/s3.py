"""The S3 datastore (aioboto3): AWS, MinIO or any other S3-protocol server.

Layout: ``<prefix><dataset>/<path>`` plus ``<prefix><dataset>/.chimp-dataset.json``. An upload is
validated by unpacking it into a local staging folder first, so a hostile or broken zip never
reaches the bucket. Then the old marker (if any) is removed, files are uploaded concurrently,
stale objects deleted, and the marker written last: listings only show datasets whose marker
exists. If anything fails after the first object was written, every object under the dataset
is removed again.

One client lives as long as the backend (made on first use or by :meth:`S3Datastore.open`,
closed by :meth:`S3Datastore.close`); the bucket is created when missing.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aioboto3
import aiohttp
import anyio
import anyio.to_thread
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chimp.shared.datastore.archive import (
    MARKER_NAME,
    UnpackedDataset,
    UnpackLimits,
    safe_relative_path,
    unpack_zip,
)
from chimp.shared.datastore.base import (
    DatasetMarker,
    Datastore,
    check_dataset_name,
    checked_files,
)
from chimp.shared.errors import (
    ChimpError,
    ConflictError,
    DependencyUnavailableError,
    NotFoundError,
)
from chimp.shared.schemas.datasets import DatasetEntry, DatasetInfo, DatasetManifest
from chimp.shared.settings import S3Config

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DEFAULT_CONCURRENCY = 16
_DELETE_BATCH = 1000  # the most keys one DeleteObjects call accepts
_CHUNK = 1024 * 1024
_MISSING = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
# Some S3-protocol servers reject the CRC trailers newer botocore sends by default.
_CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=60,
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


class S3Datastore(Datastore):
    def __init__(
        self,
        config: S3Config,
        limits: UnpackLimits,
        *,
        staging_dir: Path | None = None,
        concurrency: int = _DEFAULT_CONCURRENCY,
        max_attempts: int = 3,
        page_size: int = 1000,
    ) -> None:
        self._config = config
        self._bucket = config.bucket
        self._prefix = f"{config.prefix.strip('/')}/" if config.prefix.strip("/") else ""
        self._where = f"S3 at {config.endpoint_url or 'AWS'} (bucket {config.bucket!r})"
        self._limits = limits
        self._staging_dir = staging_dir
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._pages = {"PageSize": page_size}
        self._transfers = anyio.Semaphore(concurrency)
        self._open_lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._bucket_ready = False

    # -- client lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        await self._s3()

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        self._bucket_ready = False
        if stack is not None:
            await stack.aclose()

    async def _s3(self) -> Any:
        """The client, made once; the bucket is ensured until that succeeds once."""
        if self._client is not None and self._bucket_ready:
            return self._client
        async with self._open_lock:
            if self._client is None:
                stack = AsyncExitStack()
                self._client = await stack.enter_async_context(self._make_client())
                self._stack = stack
            if not self._bucket_ready:
                async with self._errors("reach the bucket"):
                    await self._ensure_bucket(self._client)
                self._bucket_ready = True
        return self._client

    def _make_client(self) -> Any:
        cfg = self._config
        session = aioboto3.Session(
            aws_access_key_id=cfg.access_key_id.get_secret_value() if cfg.access_key_id else None,
            aws_secret_access_key=(
                cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
            ),
            region_name=cfg.region,
        )
        # Path-style addressing: MinIO and most self-hosted servers have no per-bucket DNS.
        config = _CLIENT_CONFIG.merge(
            Config(
                s3={"addressing_style": "path" if cfg.endpoint_url else "auto"},
                retries={"max_attempts": self._max_attempts, "mode": "standard"},
            )
        )
        return session.client("s3", endpoint_url=cfg.endpoint_url, config=config)

    async def _ensure_bucket(self, client: Any) -> None:
        try:
            await client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _MISSING:
                raise
        kwargs: dict[str, Any] = {}
        if self._config.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self._config.region}
        try:
            await client.create_bucket(Bucket=self._bucket, **kwargs)
            logger.info("created bucket %s", self._bucket)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise

    @asynccontextmanager
    async def _errors(self, action: str) -> AsyncIterator[None]:
        """Turn what the network and the server can throw into one 503 naming S3."""
        try:
            yield
        except (BotoCoreError, ClientError, aiohttp.ClientError) as exc:
            raise DependencyUnavailableError(
                f"{self._where} could not {action}: {exc}", detail={"dependency": "s3"}
            ) from exc

    # -- keys --------------------------------------------------------------------------------

    def _key(self, name: str, path: str) -> str:
        return f"{self._prefix}{name}/{path}"

    async def _objects(self, name: str) -> list[tuple[str, int]]:
        """Every ``(key, size)`` under the dataset, marker included, across all pages."""
        client = await self._s3()
        paginator = client.get_paginator("list_objects_v2")
        found: list[tuple[str, int]] = []
        async for page in paginator.paginate(
            Bucket=self._bucket, Prefix=self._key(name, ""), PaginationConfig=self._pages
        ):
            found.extend((obj["Key"], int(obj["Size"])) for obj in page.get("Contents", []))
        return found

    async def _read_marker(self, name: str) -> DatasetMarker | None:
        client = await self._s3()
        try:
            response = await client.get_object(
                Bucket=self._bucket, Key=self._key(name, MARKER_NAME)
            )
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise
        body = response["Body"]
        # Entering the body (not reading through what it yields) releases the connection.
        async with body:
            raw: bytes = await body.read()
        return DatasetMarker.parse(raw)

    async def _require(self, name: str) -> DatasetMarker:
        marker = await self._read_marker(name)
        if marker is None:
            raise NotFoundError(f"dataset {name!r} not found")
        return marker

    async def _delete_keys(self, keys: Sequence[str]) -> None:
        client = await self._s3()
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
            response = await client.delete_objects(
                Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise DependencyUnavailableError(
                    f"{self._where} could not delete {first.get('Key')}: {first.get('Message')}",
                    detail={"dependency": "s3"},
                )

    async def _for_each(self, items: Sequence[T], func: Callable[[T], Awaitable[None]]) -> None:
        """Run ``func`` over ``items`` with at most ``concurrency`` transfers in flight."""
        pending = iter(items)

        async def worker() -> None:
            for item in pending:  # workers share one iterator, so each item runs once
                async with self._transfers:
                    await func(item)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(min(self._concurrency, len(items))):
                    tg.start_soon(worker)
        except ExceptionGroup as group:
            raise _first_error(group) from None

    # -- public API --------------------------------------------------------------------------

    async def upload_dataset_zip(
        self, name: str, zip_path: Path, *, overwrite: bool = False
    ) -> DatasetInfo:
        check_dataset_name(name)
        async with self._errors(f"look up dataset {name!r}"):
            if not overwrite and await self._read_marker(name) is not None:
                raise ConflictError(f"dataset {name!r} already exists")
        staging = Path(await anyio.to_thread.run_sync(self._make_staging))
        try:
            unpacked = await anyio.to_thread.run_sync(
                unpack_zip, zip_path, staging / "data", self._limits
            )
            async with self._errors(f"store dataset {name!r}"):
                return await self._store(name, staging / "data", unpacked, overwrite)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(partial(shutil.rmtree, staging, ignore_errors=True))

    def _make_staging(self) -> str:
        if self._staging_dir is not None:
            self._staging_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.mkdtemp(prefix="chimp-upload-", dir=self._staging_dir)

    async def _store(
        self, name: str, folder: Path, unpacked: UnpackedDataset, overwrite: bool
    ) -> DatasetInfo:
        client = await self._s3()
        marker_key = self._key(name, MARKER_NAME)
        old_keys = {key for key, _ in await self._objects(name)}
        if marker_key in old_keys:
            if not overwrite:
                raise ConflictError(f"dataset {name!r} already exists")
            # Hide the old dataset first: from here on it is being replaced.
            await client.delete_object(Bucket=self._bucket, Key=marker_key)
        try:
            await self._for_each(unpacked.entries, partial(self._upload_file, name, folder))
            new_keys = {self._key(name, entry.path) for entry in unpacked.entries}
            await self._delete_keys(sorted(old_keys - new_keys - {marker_key}))
            marker = DatasetMarker(
                created_at=datetime.now(UTC), files=unpacked.files, size=unpacked.size_bytes
            )
            await client.put_object(
                Bucket=self._bucket,
                Key=marker_key,
                Body=marker.model_dump_json().encode(),
                ContentType="application/json",
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._purge(name)
            raise
        return marker.info(name)

    async def _upload_file(self, name: str, folder: Path, entry: DatasetEntry) -> None:
        client = await self._s3()
        # We open the file ourselves: aioboto3's upload_file leaks its file when cancelled
        # while opening it (a sibling upload failed). anyio finishes the open before it
        # delivers a cancel, so the file is always closed. Large files go multipart.
        async with await anyio.open_file(folder / entry.path, "rb") as fh:
            await client.upload_fileobj(fh, self._bucket, self._key(name, entry.path))

    async def _purge(self, name: str) -> None:
        """Best effort: remove every object of a dataset whose upload failed."""
        try:
            keys = [key for key, _ in await self._objects(name)]
            await self._delete_keys(keys)
        except (ChimpError, BotoCoreError, ClientError, aiohttp.ClientError) as exc:
            logger.warning("could not clean up dataset %r after a failed upload: %s", name, exc)

    async def list_datasets(self) -> list[DatasetInfo]:
        async with self._errors("list datasets"):
            client = await self._s3()
            paginator = client.get_paginator("list_objects_v2")
            names: list[str] = []
            async for page in paginator.paginate(
                Bucket=self._bucket,
                Prefix=self._prefix,
                Delimiter="/",
                PaginationConfig=self._pages,
            ):
                for common in page.get("CommonPrefixes", []):
                    names.append(common["Prefix"][len(self._prefix) :].rstrip("/"))
            markers: dict[str, DatasetMarker] = {}

            async def read(dataset: str) -> None:
                marker = await self._read_marker(dataset)
                if marker is not None:
                    markers[dataset] = marker

            await self._for_each(names, read)
        return [markers[n].info(n) for n in sorted(markers)]

    async def get_manifest(self, name: str) -> DatasetManifest:
        check_dataset_name(name)
        async with self._errors(f"read dataset {name!r}"):
            info = (await self._require(name)).info(name)
            entries = self._entries(name, await self._objects(name))
        return DatasetManifest(**info.model_dump(), entries=entries)

    def _entries(self, name: str, objects: list[tuple[str, int]]) -> list[DatasetEntry]:
        start = len(self._key(name, ""))
        entries: list[DatasetEntry] = []
        for key, size in objects:
            rel = key[start:]
            if rel == MARKER_NAME:
                continue
            try:
                path = safe_relative_path(rel).as_posix()
            except ChimpError:
                # Only someone writing to the bucket directly can put such a key there.
                logger.warning("skipping unsafe key %r in dataset %r", key, name)
                continue
            entries.append(DatasetEntry(path=path, size=size))
        return sorted(entries, key=lambda entry: entry.path)

    async def download_dataset(self, name: str, dest: Path) -> Path:
        check_dataset_name(name)
        async with self._errors(f"download dataset {name!r}"):
            await self._require(name)
            entries = self._entries(name, await self._objects(name))
            await anyio.to_thread.run_sync(partial(dest.mkdir, parents=True, exist_ok=True))
            await self._for_each(entries, partial(self._download_file, name, dest))
        return dest

    async def _download_file(self, name: str, dest: Path, entry: DatasetEntry) -> None:
        client = await self._s3()
        target = dest / entry.path
        await anyio.to_thread.run_sync(partial(target.parent.mkdir, parents=True, exist_ok=True))
        response = await client.get_object(Bucket=self._bucket, Key=self._key(name, entry.path))
        body = response["Body"]
        async with body, await anyio.open_file(target, "wb") as out:
            while chunk := await body.read(_CHUNK):
                await out.write(chunk)

    async def download_files(self, name: str, paths: Sequence[str], dest: Path) -> Path:
        check_dataset_name(name)
        checked = list(checked_files(dict.fromkeys(paths, b"")))
        async with self._errors(f"download files of dataset {name!r}"):
            await self._require(name)
            try:
                await self._for_each(
                    [DatasetEntry(path=rel, size=0) for rel in checked],
                    partial(self._download_file, name, dest),
                )
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    raise NotFoundError(f"dataset {name!r} lacks some of {checked[:3]}") from exc
                raise
        return dest

    async def delete_dataset(self, name: str) -> None:
        check_dataset_name(name)
        async with self._errors(f"delete dataset {name!r}"):
            await self._require(name)
            client = await self._s3()
            # The marker goes first so the dataset disappears before its files do.
            await client.delete_object(Bucket=self._bucket, Key=self._key(name, MARKER_NAME))
            await self._delete_keys([key for key, _ in await self._objects(name)])

    async def put_files(self, name: str, files: Mapping[str, bytes]) -> DatasetInfo:
        check_dataset_name(name)
        checked = checked_files(files)
        async with self._errors(f"add files to dataset {name!r}"):
            client = await self._s3()
            previous = await self._read_marker(name)
            for rel, data in checked.items():
                await client.put_object(Bucket=self._bucket, Key=self._key(name, rel), Body=data)
            entries = self._entries(name, await self._objects(name))
            marker = DatasetMarker(
                created_at=previous.created_at if previous else datetime.now(UTC),
                files=len(entries),
                size=sum(entry.size for entry in entries),
            )
            await client.put_object(
                Bucket=self._bucket,
                Key=self._key(name, MARKER_NAME),
                Body=marker.model_dump_json().encode(),
                ContentType="application/json",
            )
        return marker.info(name)

    async def check(self) -> None:
        async with self._errors("reach the bucket"):
            client = await self._s3()
            await client.head_bucket(Bucket=self._bucket)
