"""The serving app factory; its lifespan owns the registry client, the manager and the limiters."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI

from chimp import __version__
from chimp.serving.config import ServingSettings
from chimp.serving.dependencies import ServingState
from chimp.serving.image_pipeline import ImagePipeline
from chimp.serving.inference import SessionOptions, select_providers
from chimp.serving.loading import OnnxLoader
from chimp.serving.metrics import MetricsMiddleware, ServingMetrics
from chimp.serving.model_manager import ModelManager, RegistryReader
from chimp.serving.monitoring import Monitor
from chimp.serving.recording import PredictionRecorder
from chimp.serving.routes import health, images, legacy, models, monitoring, v2
from chimp.shared.api_docs import install_api_docs
from chimp.shared.auth import require_token
from chimp.shared.errors import UnauthorizedError, error_responses, install_error_handlers
from chimp.shared.http_limits import install_cors
from chimp.shared.registry import AsyncModelRegistry, ModelRegistry

logger = logging.getLogger(__name__)

STARTUP_WAIT_S = 30.0

# Monitoring writes in the background: a Redis that is down must fail those writes quickly
# rather than hold a flush (or a shutdown) for the default minutes.
REDIS_TIMEOUT_S = 2.0


def _default_registry(settings: ServingSettings) -> RegistryReader:
    sync = ModelRegistry(settings.mlflow.tracking_uri, experiment=settings.mlflow.experiment)
    return AsyncModelRegistry(sync, anyio.CapacityLimiter(4))


def create_app(
    settings: ServingSettings | None = None, *, registry: RegistryReader | None = None
) -> FastAPI:
    """The serving API. ``registry`` replaces the MLflow adapter (tests use their own)."""
    settings = settings or ServingSettings()
    config = settings.serving
    providers = select_providers(config.providers)
    metrics = ServingMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        inference_limiter = anyio.CapacityLimiter(config.inference_threads)
        loader = OnnxLoader(
            SessionOptions(providers=providers, intra_op_threads=config.intra_op_threads),
            inference_limiter=inference_limiter,
            batching=config.batching,
            warm_up=config.warmup,
        )
        reader = registry or _default_registry(settings)
        manager = ModelManager(
            reader,
            loader,
            cache_dir=settings.model_cache_dir(),
            required=settings.served_models(),
            poll_interval_s=config.poll_interval_s,
            retry_failed_after_s=config.retry_failed_after_s,
            idle_unload_s=config.idle_unload_s,
        )
        metrics.attach(manager)
        pipeline = ImagePipeline(config.detector, anyio.CapacityLimiter(config.image_threads))
        redis = (
            aioredis.Redis.from_url(
                settings.redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                socket_timeout=REDIS_TIMEOUT_S,
            )
            if config.monitoring.enabled
            else None
        )
        recorder = PredictionRecorder(redis, config.monitoring)
        monitor = Monitor(recorder, reader, config.monitoring, manager=manager)
        metrics.attach_monitor(monitor)
        app.state.serving = ServingState(settings, manager, pipeline, metrics, monitor)
        logger.info("serving %s with providers %s", settings.served_models(), providers)
        await manager.start(wait_s=STARTUP_WAIT_S)
        monitor.start()
        try:
            yield
        finally:
            try:
                await monitor.stop()
            finally:
                await manager.stop()
                if redis is not None:
                    await redis.aclose()

    app = FastAPI(
        title="CHIMP serving API",
        version=__version__,
        description="Models from the MLflow registry over REST: images to faces with emotion "
        "scores, the Open Inference Protocol (v2), and the original system's endpoints.",
        lifespan=lifespan,
        max_body_size=config.max_infer_body_bytes,
    )
    install_api_docs(app)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_cors(app, settings.cors)
    # Routes are matched in order: the hot inference paths first (v2 infer, predict-image).
    app.router.routes.extend(v2.lean_infer_routes())
    app.include_router(v2.build_router())
    v2.document_infer_request(app)
    app.include_router(images.router)
    app.include_router(health.build_router(lambda: _state(app).manager))
    app.include_router(models.build_router(settings.auth.token))
    app.include_router(legacy.build_router(settings.model_name))
    # What each version predicted includes personal (user-<id>) versions: the admin token.
    app.include_router(
        monitoring.router,
        dependencies=[Depends(require_token(settings.auth.token))],
        responses=error_responses(UnauthorizedError),
    )
    return app


def _state(app: FastAPI) -> ServingState:
    state: ServingState = app.state.serving
    return state
