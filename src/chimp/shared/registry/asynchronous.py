"""``AsyncModelRegistry``: the sync adapter for event loops, each call in a worker thread."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import anyio
import anyio.to_thread

from chimp.shared.registry.sync import ModelRegistry

P = ParamSpec("P")
R = TypeVar("R")

_Method = Callable[Concatenate[ModelRegistry, P], R]


class _InThread(Generic[P, R]):
    """An async twin of a ``ModelRegistry`` method, run in a worker thread."""

    def __init__(self, method: _Method[P, R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _InThread[P, R]: ...
    @overload
    def __get__(
        self, obj: AsyncModelRegistry, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(
        self, obj: AsyncModelRegistry | None, owner: type[Any]
    ) -> _InThread[P, R] | Callable[P, Coroutine[Any, Any, R]]:
        if obj is None:
            return self
        method, registry, limiter = self._method, obj.sync, obj.limiter

        @functools.wraps(method)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = functools.partial(method, registry, *args, **kwargs)
            return await anyio.to_thread.run_sync(bound, limiter=limiter)

        return call


class AsyncModelRegistry:
    """``ModelRegistry`` for event loops: the same methods, each awaited in a worker thread.

    ``limiter`` bounds how many MLflow calls run at once (None: anyio's default limiter).
    """

    def __init__(
        self, registry: ModelRegistry, limiter: anyio.CapacityLimiter | None = None
    ) -> None:
        self.sync = registry
        self.limiter = limiter

    @property
    def tracking_uri(self) -> str:
        return self.sync.tracking_uri

    check = _InThread(ModelRegistry.check)
    start_run = _InThread(ModelRegistry.start_run)
    log_params = _InThread(ModelRegistry.log_params)
    log_metrics = _InThread(ModelRegistry.log_metrics)
    set_run_tags = _InThread(ModelRegistry.set_run_tags)
    log_artifacts = _InThread(ModelRegistry.log_artifacts)
    end_run = _InThread(ModelRegistry.end_run)
    log_model_version = _InThread(ModelRegistry.log_model_version)
    set_metadata = _InThread(ModelRegistry.set_metadata)
    get_version = _InThread(ModelRegistry.get_version)
    resolve = _InThread(ModelRegistry.resolve)
    set_alias = _InThread(ModelRegistry.set_alias)
    delete_alias = _InThread(ModelRegistry.delete_alias)
    set_version_tags = _InThread(ModelRegistry.set_version_tags)
    aliases = _InThread(ModelRegistry.aliases)
    list_models = _InThread(ModelRegistry.list_models)
    list_versions = _InThread(ModelRegistry.list_versions)
    metric_history = _InThread(ModelRegistry.metric_history)
    download_onnx = _InThread(ModelRegistry.download_onnx)
    list_version_artifacts = _InThread(ModelRegistry.list_version_artifacts)
    download_version_artifact = _InThread(ModelRegistry.download_version_artifact)
    user_versions = _InThread(ModelRegistry.user_versions)
    delete_version = _InThread(ModelRegistry.delete_version)
