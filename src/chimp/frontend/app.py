"""The web app: pages, the live WebSocket and the /api proxy, in one FastAPI app."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from chimp.frontend.access import AccessMiddleware
from chimp.frontend.clients import BackendError, Backends, open_backends
from chimp.frontend.config import FrontendSettings
from chimp.frontend.corrections import InputSpecs
from chimp.frontend.routes import api, live, me, monitoring, pages
from chimp.frontend.sessions import SessionSigner
from chimp.shared.api_docs import install_api_docs
from chimp.shared.errors import install_error_handlers
from chimp.shared.health import Check, health_router
from chimp.shared.http_limits import MULTIPART_OVERHEAD_BYTES, BodyLimitMiddleware, install_cors

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Each check is ~60 ms of CPU and 16 MiB of scrypt memory: a few at a time is plenty.
PASSWORD_THREADS = 2


async def _backend_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BackendError)
    return JSONResponse(exc.error_body.model_dump(mode="json"), status_code=exc.status)


def _health_checks(app: FastAPI) -> Mapping[str, Check]:
    def live_check(backend_name: str) -> Check:
        async def check() -> None:
            backends: Backends = backends_of_app(app)
            backend = getattr(backends, backend_name)
            response = await backend.request("GET", "/health/live")
            response.raise_for_status()

        return check

    return {"training": live_check("training"), "serving": live_check("serving")}


def backends_of_app(app: FastAPI) -> Backends:
    backends = app.state.backends
    assert isinstance(backends, Backends)
    return backends


def create_app(
    settings: FrontendSettings,
    *,
    training_transport: httpx.AsyncBaseTransport | None = None,
    serving_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    cfg = settings.frontend
    key = (
        cfg.session_secret.get_secret_value().encode()
        if cfg.session_secret is not None
        # Without a configured secret, sessions simply end when the process restarts.
        else secrets.token_bytes(32)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_backends(
            settings, training_transport=training_transport, serving_transport=serving_transport
        ) as backends:
            app.state.backends = backends
            # One cache for every live socket: a version's input never changes.
            app.state.input_specs = InputSpecs(backends.training)
            yield

    app = FastAPI(
        title="CHIMP web app",
        description="Live emotion recognition, calibration, training and model history.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.signer = SessionSigner(key=key, max_age_s=cfg.session_max_age_s)
    app.state.password_limiter = anyio.CapacityLimiter(PASSWORD_THREADS)
    app.state.templates = pages.make_templates()
    install_api_docs(app)
    install_error_handlers(app)
    app.add_exception_handler(BackendError, _backend_error)
    upload_limit = settings.datastore.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    app.add_middleware(BodyLimitMiddleware, routes={("POST", "/api/datasets"): upload_limit})
    install_cors(app, settings.cors)
    app.add_middleware(
        AccessMiddleware,
        signer=app.state.signer,
        sign_in=cfg.sign_in_enabled,
        secure_cookies=cfg.secure_cookies,
    )
    app.include_router(health_router(lambda: _health_checks(app)))
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(monitoring.router)
    app.include_router(me.router)
    app.include_router(live.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
