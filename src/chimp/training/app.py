"""The training API: ``create_app(settings)``; run it with ``chimp-train serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from arq.connections import ArqRedis
from fastapi import Depends, FastAPI
from redis.asyncio import ConnectionPool

from chimp.shared.api_docs import install_api_docs
from chimp.shared.auth import require_token
from chimp.shared.datastore import open_datastore
from chimp.shared.errors import (
    DependencyUnavailableError,
    UnauthorizedError,
    error_responses,
    install_error_handlers,
)
from chimp.shared.health import Check, health_router
from chimp.shared.http_limits import MULTIPART_OVERHEAD_BYTES, BodyLimitMiddleware, install_cors
from chimp.shared.registry import AsyncModelRegistry, ModelRegistry
from chimp.training.config import TrainingSettings
from chimp.training.dependencies import TrainingState
from chimp.training.jobs import deserialize_job, serialize_job
from chimp.training.plugins.discovery import PluginCatalog, discover_plugins
from chimp.training.records import ModelRecords
from chimp.training.review import ReviewQueue
from chimp.training.routes import datasets, loop, model_versions, models, plugins, tasks, users
from chimp.training.task_store import TaskStore
from chimp.training.user_store import UserStore

# MLflow calls from request handlers run in threads; this bounds how many at once.
REGISTRY_THREADS = 8


def create_app(settings: TrainingSettings, *, catalog: PluginCatalog | None = None) -> FastAPI:
    """The training API for ``settings``; ``catalog`` overrides plugin discovery (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No connection is made here: the API starts (and reports not-ready) with Redis down.
        redis = ArqRedis(
            ConnectionPool.from_url(settings.redis_url),
            default_queue_name=settings.training.queue_name,
            job_serializer=serialize_job,
            job_deserializer=deserialize_job,
        )
        datastore = open_datastore(settings)
        registry = AsyncModelRegistry(
            ModelRegistry(settings.mlflow.tracking_uri, experiment=settings.mlflow.experiment),
            anyio.CapacityLimiter(REGISTRY_THREADS),
        )
        users = UserStore(redis, settings.training.key_prefix)
        app.state.training = TrainingState(
            settings=settings,
            redis=redis,
            store=TaskStore(
                redis,
                settings.training.key_prefix,
                ttl_s=settings.training.task_ttl_s,
                lease_s=settings.training.lease_s,
            ),
            datastore=datastore,
            registry=registry,
            catalog=catalog or discover_plugins(settings.training.plugin_dir),
            users=users,
            review=ReviewQueue(redis, users, datastore, registry, settings.training),
            records=ModelRecords(
                settings.mlflow.tracking_uri, experiment=settings.mlflow.experiment
            ),
        )
        try:
            yield
        finally:
            await datastore.close()
            await redis.aclose()

    app = FastAPI(
        title="CHIMP training API",
        version="1.0.0",
        description="Datasets, training plugins, tasks with progress, and model promotion.",
        lifespan=lifespan,
    )
    install_api_docs(app)
    install_error_handlers(app)
    upload_limit = settings.datastore.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    app.add_middleware(BodyLimitMiddleware, routes={("POST", "/datasets"): upload_limit})
    install_cors(app, settings.cors)

    def checks() -> Mapping[str, Check]:
        state: TrainingState = app.state.training

        async def redis_check() -> None:
            try:
                await state.redis.ping()
            except Exception as exc:
                raise DependencyUnavailableError(f"Redis: {exc}") from exc

        return {
            "redis": redis_check,
            "datastore": state.datastore.check,
            "mlflow": state.registry.check,
        }

    guard = [Depends(require_token(settings.auth.token))]
    app.include_router(health_router(checks))
    app.include_router(datasets.router(guard))
    app.include_router(plugins.router())
    # Tasks name users and their datasets; models include per-user ones: every read of
    # them needs the token too (the web app and the CLI send it).
    unauthorized = error_responses(UnauthorizedError)
    app.include_router(tasks.router(guard), dependencies=guard, responses=unauthorized)
    app.include_router(models.router(guard), dependencies=guard, responses=unauthorized)
    app.include_router(model_versions.router(guard), dependencies=guard, responses=unauthorized)
    app.include_router(users.router(guard))
    app.include_router(loop.router(), dependencies=guard, responses=unauthorized)
    return app
