"""Typed access to what the lifespan and the access middleware put on the app and request."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from chimp.frontend.clients import Backends
from chimp.frontend.config import FrontendConfig, FrontendSettings
from chimp.frontend.corrections import InputSpecs
from chimp.frontend.sessions import SessionSigner


def backends_of(conn: HTTPConnection) -> Backends:
    backends = conn.app.state.backends
    assert isinstance(backends, Backends), "lifespan did not run"
    return backends


def input_specs_of(conn: HTTPConnection) -> InputSpecs:
    specs = conn.app.state.input_specs
    assert isinstance(specs, InputSpecs), "lifespan did not run"
    return specs


def settings_of(conn: HTTPConnection) -> FrontendSettings:
    settings = conn.app.state.settings
    assert isinstance(settings, FrontendSettings)
    return settings


def signer_of(conn: HTTPConnection) -> SessionSigner:
    signer = conn.app.state.signer
    assert isinstance(signer, SessionSigner)
    return signer


def password_limiter_of(conn: HTTPConnection) -> anyio.CapacityLimiter:
    limiter = conn.app.state.password_limiter
    assert isinstance(limiter, anyio.CapacityLimiter)
    return limiter


def user_id_of(conn: HTTPConnection) -> str | None:
    """The caller's id; None only on public pages while sign-in is on and nobody is signed in."""
    value = conn.scope.get("state", {}).get("user_id")
    return value if isinstance(value, str) else None


def _config(request: Request) -> FrontendConfig:
    return settings_of(request).frontend


def _user_id(request: Request) -> str:
    user = user_id_of(request)
    assert user is not None, "access middleware guards every non-public route"
    return user


BackendsDep = Annotated[Backends, Depends(backends_of)]
ConfigDep = Annotated[FrontendConfig, Depends(_config)]
SettingsDep = Annotated[FrontendSettings, Depends(settings_of)]
UserIdDep = Annotated[str, Depends(_user_id)]
