"""Which model version answers a request, and keeping that in step with the registry.

The manager holds two tables:

* loaded versions ``{(name, version) -> LoadedModel}``: ready ONNX Runtime sessions with the
  version's metadata, shared by every request in the process;
* serving pointers ``{(name, alias) -> version}``: the version each alias is *served* by.

A background poller re-reads the registry's aliases every ``poll_interval_s``. When an alias
has moved, the new version is downloaded, opened and warmed up first; only then does the
pointer swap. Requests already running keep their reference to the old version and finish on
it, so nothing fails during a swap. A version that fails to load is logged and the old pointer
stays. Requests never query the registry, except once for a model, alias or version the
process has not seen yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import time
import uuid
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import anyio.to_thread

from chimp.serving.inference import ModelRunner
from chimp.shared.errors import (
    BadRequestError,
    ChimpError,
    ConflictError,
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from chimp.shared.registry import PRODUCTION, user_alias
from chimp.shared.schemas.models import ModelMetadata, ModelRef, ModelVersionInfo

logger = logging.getLogger(__name__)

T = TypeVar("T")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class RegistryReader(Protocol):
    """The part of :class:`chimp.shared.registry.AsyncModelRegistry` serving uses."""

    async def aliases(self, name: str) -> dict[str, str]: ...

    async def get_version(self, name: str, version: str) -> ModelVersionInfo: ...

    async def download_onnx(self, name: str, version: str, dest_dir: Path) -> Path: ...


class ModelLoadError(DependencyUnavailableError):
    """The registry has this version but it could not be loaded (bad artifact or metadata)."""

    code = "model_load_failed"


class MissingMetadataError(ConflictError):
    """The version has no CHIMP metadata, which this endpoint needs (add it, then retry)."""

    code = "missing_metadata"


@dataclass(eq=False)
class LoadedModel:
    name: str
    version: str
    # None for a version registered without CHIMP (e.g. plain mlflow.onnx.log_model): it is
    # served from its graph over the Open Inference Protocol only.
    metadata: ModelMetadata | None
    runner: ModelRunner
    loaded_at: float = field(default_factory=time.time)
    # Set when a request names this version explicitly; it then stays for idle_unload_s.
    explicit_use: float | None = None

    def require_metadata(self, endpoint: str) -> ModelMetadata:
        """The version's CHIMP metadata, or a 409 saying what is missing and how to add it."""
        if self.metadata is not None:
            return self.metadata
        raise MissingMetadataError(
            f"model '{self.name}' version {self.version} has no CHIMP metadata, which "
            f"{endpoint} needs: task, labels in output order, and the input spec (height, "
            "width, channels, color, scale). Add it on the training API with PUT "
            f"/models/{self.name}/versions/{self.version}/metadata, or use the Open Inference "
            f"Protocol (POST /v2/models/{self.name}/versions/{self.version}/infer), which "
            "needs none",
            detail={"name": self.name, "version": self.version, "missing": "chimp.metadata"},
        )


class VersionLoader(Protocol):
    """Turns a downloaded ONNX file into a ready :class:`LoadedModel` (raises when it cannot)."""

    async def __call__(self, info: ModelVersionInfo, onnx_path: Path) -> LoadedModel: ...


@dataclass(frozen=True)
class Selector:
    """How a request picks a version: an alias, an explicit version, or a user's model."""

    alias: str | None = None
    version: str | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if self.version is not None and (self.alias is not None or self.user is not None):
            raise BadRequestError("give either a version or an alias/user, not both")
        for value, what in ((self.alias, "alias"), (self.version, "version"), (self.user, "user")):
            if value is not None and not value.strip():
                raise BadRequestError(f"{what} must not be empty")


@dataclass(frozen=True)
class Resolved:
    model: LoadedModel
    ref: ModelRef


@dataclass
class _Failure:
    message: str
    at: float


@dataclass
class RefreshReport:
    registry_ok: bool = True
    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelState:
    """A snapshot of one model for listings and metrics."""

    name: str
    serving: dict[str, str]
    registry_aliases: dict[str, str]
    loaded: list[LoadedModel]


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part)


class ModelManager:
    def __init__(
        self,
        registry: RegistryReader,
        loader: VersionLoader,
        *,
        cache_dir: Path,
        required: Iterable[str],
        poll_interval_s: float = 2.0,
        retry_failed_after_s: float = 30.0,
        idle_unload_s: float = 600.0,
    ) -> None:
        self._registry = registry
        self._loader = loader
        self._cache_dir = cache_dir
        self.required = list(dict.fromkeys(required))
        self._poll_interval_s = poll_interval_s
        self._retry_failed_after_s = retry_failed_after_s
        self._idle_unload_s = idle_unload_s
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._serving: dict[tuple[str, str], str] = {}
        self._aliases: dict[str, dict[str, str]] = {}
        self._tracked: set[tuple[str, str]] = {(n, PRODUCTION) for n in self.required}
        self._failed: dict[tuple[str, str], _Failure] = {}
        self._loading: dict[tuple[str, str], asyncio.Task[LoadedModel]] = {}
        self._missing: dict[str, float] = {}
        self._refresh_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.registry_ok: bool | None = None  # None until the first poll finishes
        self.registry_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, wait_s: float = 30.0) -> None:
        """Start following the registry; wait up to ``wait_s`` for the first refresh."""
        first = asyncio.create_task(self._guarded_refresh())
        self._poller = asyncio.create_task(self._poll(first))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(first), timeout=wait_s)

    async def stop(self) -> None:
        tasks = [t for t in (self._poller, *self._loading.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._poller = None

    async def _poll(self, first: asyncio.Task[None]) -> None:
        await first
        while True:
            await asyncio.sleep(self._poll_interval_s)
            await self._guarded_refresh()

    async def _guarded_refresh(self) -> None:
        try:
            await self.refresh()
        except Exception:  # the poller must survive anything one refresh throws
            logger.exception("model refresh failed")

    # -- requests ----------------------------------------------------------------------------

    async def resolve(self, name: str, selector: Selector) -> Resolved:
        """The loaded version that answers ``selector`` for model ``name``.

        Raises :class:`NotFoundError` for an unknown model, version or alias.
        """
        if selector.version is not None:
            model = self._models.get((name, selector.version))
            if model is None:
                await self._alias_table(name)  # a clear 404 for an unknown model first
                model = await self._load_version(name, selector.version)
            model.explicit_use = time.monotonic()
            return Resolved(model, ModelRef(name=name, version=model.version))
        fallback = selector.alias or PRODUCTION
        if selector.user is not None:
            personal = user_alias(selector.user)
            model = await self._by_alias(name, personal, missing_ok=True)
            if model is not None:
                return Resolved(model, ModelRef(name=name, version=model.version, alias=personal))
        model = await self._by_alias(name, fallback, missing_ok=False)
        assert model is not None
        return Resolved(model, ModelRef(name=name, version=model.version, alias=fallback))

    async def _by_alias(self, name: str, alias: str, *, missing_ok: bool) -> LoadedModel | None:
        version = self._serving.get((name, alias))
        if version is not None and (name, version) in self._models:
            return self._models[(name, version)]
        table = await self._alias_table(name)
        target = table.get(alias)
        if target is None:
            if missing_ok:
                return None
            known = ", ".join(sorted(table)) or "none"
            raise NotFoundError(
                f"model '{name}' has no version with alias '{alias}' (aliases: {known})"
            )
        self._tracked.add((name, alias))
        model = await self._load_version(name, target)
        # The poller may have moved the alias while we loaded; never point backwards.
        if self._aliases.get(name, {}).get(alias) == target:
            self._serving[(name, alias)] = target
        return model

    async def _alias_table(self, name: str) -> dict[str, str]:
        table = self._aliases.get(name)
        if table is not None:
            return table
        # A model this process has not seen: ask the registry once, remember a miss briefly
        # so a client hammering a wrong name does not hammer MLflow too.
        missed = self._missing.get(name)
        if missed is not None and time.monotonic() - missed < self._poll_interval_s:
            raise NotFoundError(f"model '{name}' is not registered")
        try:
            table = await self._read_aliases(name)
        except NotFoundError:
            self._missing[name] = time.monotonic()
            raise NotFoundError(f"model '{name}' is not registered") from None
        self._missing.pop(name, None)
        self._aliases[name] = table
        return table

    # -- loading -----------------------------------------------------------------------------

    async def _load_version(self, name: str, version: str) -> LoadedModel:
        key = (name, version)
        loaded = self._models.get(key)
        if loaded is not None:
            return loaded
        task = self._loading.get(key)
        if task is None:
            failure = self._failed.get(key)
            if failure and time.monotonic() - failure.at < self._retry_failed_after_s:
                raise ModelLoadError(f"{name} version {version} failed to load: {failure.message}")
            task = asyncio.create_task(self._do_load(name, version))
            self._loading[key] = task
            task.add_done_callback(lambda t: self._settle(key, t))
        # Shielded: a client that disconnects must not cancel a load others wait for.
        return await asyncio.shield(task)

    def _settle(self, key: tuple[str, str], task: asyncio.Task[LoadedModel]) -> None:
        self._loading.pop(key, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self._models[key] = task.result()
            self._failed.pop(key, None)
        elif isinstance(exc, ModelLoadError):
            self._failed[key] = _Failure(exc.message, time.monotonic())

    async def _do_load(self, name: str, version: str) -> LoadedModel:
        return await self._open(await _registry_call(self._registry.get_version(name, version)))

    async def _open(self, info: ModelVersionInfo) -> LoadedModel:
        """Download (once) and open ``info``'s ONNX; any failure is a :class:`ModelLoadError`."""
        name, version = info.name, info.version
        try:
            path = await self._download(name, version)
        except InvalidInputError as exc:  # e.g. a version that is not an ONNX model
            raise ModelLoadError(exc.message) from None
        started = time.monotonic()
        try:
            model = await self._loader(info, path)
        except ChimpError:
            raise
        except Exception as exc:
            logger.warning("could not load %s version %s: %s", name, version, exc)
            raise ModelLoadError(f"{name} version {version} could not be loaded: {exc}") from exc
        logger.info(
            "loaded %s version %s in %.0f ms", name, version, 1000 * (time.monotonic() - started)
        )
        return model

    async def _download(self, name: str, version: str) -> Path:
        """The version's ONNX file, downloaded once into the cache (versions are immutable)."""
        final = self._cache_dir / _safe(name) / _safe(version)
        marker = final / ".complete"
        cached = await anyio.to_thread.run_sync(_cached_file, marker)
        if cached is not None:
            return cached
        staging = self._cache_dir / _safe(name) / f".{_safe(version)}-{uuid.uuid4().hex}"
        await anyio.to_thread.run_sync(lambda: staging.mkdir(parents=True, exist_ok=True))
        try:
            path = await _registry_call(self._registry.download_onnx(name, version, staging))
            return await anyio.to_thread.run_sync(_publish, staging, path, final)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(staging, ignore_errors=True))

    async def _read_aliases(self, name: str) -> dict[str, str]:
        return await _registry_call(self._registry.aliases(name))

    # -- following the registry --------------------------------------------------------------

    async def refresh(self) -> RefreshReport:
        """Re-read aliases; load what moved, swap pointers, drop versions nobody uses."""
        async with self._refresh_lock:
            report = RefreshReport()
            names = list(dict.fromkeys([*self.required, *self._aliases]))
            for name in names:
                try:
                    table = await self._read_aliases(name)
                except NotFoundError:
                    table = {}
                except DependencyUnavailableError as exc:
                    report.registry_ok = False
                    report.errors.append(exc.message)
                    break  # the registry is down for every name; keep serving what we have
                except ChimpError as exc:  # e.g. a configured name MLflow rejects
                    report.errors.append(f"{name}: {exc.message}")
                    continue
                self._aliases[name] = table
                await self._follow(name, table, report)
            if report.registry_ok:
                await self._adopt_metadata(report)
            self._unload_unused()
            self._note_registry(report)
            return report

    async def _follow(self, name: str, table: dict[str, str], report: RefreshReport) -> None:
        for tracked_name, alias in sorted(self._tracked):
            if tracked_name != name:
                continue
            target = table.get(alias)
            current = self._serving.get((name, alias))
            if target == current:
                continue
            if target is None:
                del self._serving[(name, alias)]
                report.changes.append(f"{name}@{alias}: removed (was version {current})")
                continue
            try:
                await self._load_version(name, target)
            except ChimpError as exc:
                keeping = f"keeping version {current}" if current else "nothing to serve"
                logger.warning("%s@%s -> %s not loaded (%s): %s", name, alias, target, keeping, exc)
                report.errors.append(f"{name}@{alias} -> version {target}: {exc.message}")
                continue
            # Only now that the new version is ready does the alias point at it.
            self._serving[(name, alias)] = target
            logger.info("%s@%s now served by version %s (was %s)", name, alias, target, current)
            report.changes.append(f"{name}@{alias}: version {current} -> {target}")

    async def _adopt_metadata(self, report: RefreshReport) -> None:
        """Reopen loaded versions that had no CHIMP metadata once the registry has some.

        Metadata can be added to a version after it was registered elsewhere; this is the one
        mutable thing about a version, so only metadata-less versions are asked again.
        """
        for key, model in list(self._models.items()):
            if model.metadata is not None:
                continue
            failure = self._failed.get(key)
            if failure and time.monotonic() - failure.at < self._retry_failed_after_s:
                continue
            try:
                info = await _registry_call(self._registry.get_version(*key))
                if info.metadata is None:
                    continue
                fresh = await self._open(info)
            except ChimpError as exc:
                self._failed[key] = _Failure(exc.message, time.monotonic())
                report.errors.append(f"{key[0]} version {key[1]}: {exc.message}")
                continue
            if self._models.get(key) is model:
                fresh.explicit_use = model.explicit_use
                self._models[key] = fresh
                report.changes.append(f"{key[0]} version {key[1]}: CHIMP metadata added")

    def _unload_unused(self) -> None:
        pointed = {(n, v) for (n, _), v in self._serving.items()}
        now = time.monotonic()
        for key, model in list(self._models.items()):
            if key in pointed:
                continue
            if model.explicit_use is not None and now - model.explicit_use < self._idle_unload_s:
                continue
            # Requests still holding this LoadedModel finish on it; the session is freed after.
            del self._models[key]
            logger.info("unloaded %s version %s", *key)

    def _note_registry(self, report: RefreshReport) -> None:
        if report.registry_ok and self.registry_ok is False:
            logger.info("model registry reachable again")
        if not report.registry_ok and self.registry_ok is not False:
            logger.warning("model registry unreachable, serving loaded models: %s", report.errors)
        self.registry_ok = report.registry_ok
        self.registry_error = None if report.registry_ok else "; ".join(report.errors)

    # -- introspection -----------------------------------------------------------------------

    def states(self) -> list[ModelState]:
        names = list(dict.fromkeys([*self.required, *self._aliases]))
        return [
            ModelState(
                name=name,
                serving={a: v for (n, a), v in sorted(self._serving.items()) if n == name},
                registry_aliases=dict(sorted(self._aliases.get(name, {}).items())),
                loaded=[m for (n, _), m in sorted(self._models.items()) if n == name],
            )
            for name in names
        ]

    def loaded(self, name: str, version: str) -> LoadedModel | None:
        return self._models.get((name, version))

    def readiness(self) -> dict[str, str | None]:
        """Per required model: None when ready, else why not.

        Ready means its production version is loaded, or the registry answered and the model
        has no production version yet (nothing to wait for). A model that was loaded stays
        ready while the registry is down.
        """
        out: dict[str, str | None] = {}
        for name in self.required:
            if (name, PRODUCTION) in self._serving:
                out[name] = None
                continue
            table = self._aliases.get(name)
            if table is None:
                out[name] = f"registry not reached yet ({self.registry_error or 'starting'})"
            elif PRODUCTION not in table:
                out[name] = None
            else:
                version = table[PRODUCTION]
                failure = self._failed.get((name, version))
                out[name] = (
                    f"production version {version} failed to load: {failure.message}"
                    if failure
                    else f"production version {version} is loading"
                )
        return out


def _cached_file(marker: Path) -> Path | None:
    if not marker.is_file():
        return None
    path = marker.parent / marker.read_text(encoding="utf-8").strip()
    return path if path.is_file() else None


def _publish(staging: Path, downloaded: Path, final: Path) -> Path:
    """Move a finished download into place atomically, so a crash never leaves half a file."""
    final.parent.mkdir(parents=True, exist_ok=True)
    # MLflow answers with an absolute path; the cache folder may be relative (./.chimp).
    relative = downloaded.resolve().relative_to(staging.resolve())
    (staging / ".complete").write_text(str(relative), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return final / relative


async def _registry_call(call: Awaitable[T]) -> T:
    """Await a registry call; anything but our own errors means the registry is unavailable."""
    try:
        return await call
    except ChimpError:
        raise
    except Exception as exc:
        raise DependencyUnavailableError(f"model registry unavailable: {exc}") from exc
