"""HTTP clients of the training and serving services, and how their failures reach users.

One ``httpx.AsyncClient`` per backend, made in the lifespan and closed on shutdown. Every call
carries the admin token (``CHIMP_AUTH__TOKEN``) because the browser never sees it: the web app's
own sign-in decides who may act, the token proves to the services that the web app is asking.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import Response

from chimp.frontend.config import FrontendSettings
from chimp.shared.errors import BadRequestError, ChimpError, DependencyUnavailableError
from chimp.shared.schemas.base import ErrorBody


class BackendError(ChimpError):
    """A backend answered with an error; carries its status so the browser sees the same one."""

    def __init__(self, status: int, body: ErrorBody) -> None:
        super().__init__(body.error, detail=body.detail)
        self.status = status
        self.error_body = body


def _segment(value: str) -> str:
    quoted = quote(value, safe="")
    # URL normalisation would collapse these and address another resource of the service.
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def upstream_path(*segments: str) -> str:
    """A backend URL path from raw values (path parameters as the browser sent them).

    Each segment is percent-encoded whole, so a ``?``, ``#``, ``/``, ``..`` or control
    character in a name stays part of that name instead of reshaping the backend URL.
    """
    return "".join("/" + _segment(s) for s in segments)


@dataclass(frozen=True)
class Backend:
    """One service we call: its name for messages, and its client."""

    name: str
    client: httpx.AsyncClient

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; a service that is down or silent becomes a clear 503."""
        try:
            return await self.client.request(method, path, **kwargs)
        except httpx.InvalidURL as exc:
            raise BadRequestError(f"invalid characters in the request: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise DependencyUnavailableError(
                f"the {self.name} service did not answer in time",
                detail={"service": self.name},
            ) from exc
        except httpx.TransportError as exc:
            raise DependencyUnavailableError(
                f"the {self.name} service is not reachable at {self.client.base_url}",
                detail={"service": self.name},
            ) from exc

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON of a successful answer; an error answer raises :class:`BackendError`."""
        response = await self.request(method, path, **kwargs)
        raise_for_error(self.name, response)
        return response.json()


def error_body(service: str, response: httpx.Response) -> tuple[int, ErrorBody]:
    """What the browser should get for a backend's error answer."""
    try:
        parsed = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        body = ErrorBody(
            error=parsed["error"],
            code=str(parsed.get("code") or "backend_error"),
            detail=parsed.get("detail"),
        )
    elif isinstance(parsed, dict) and "detail" in parsed:
        body = ErrorBody(error=str(parsed["detail"]), code="backend_error")
    else:
        body = ErrorBody(
            error=f"the {service} service answered {response.status_code}", code="backend_error"
        )
    status = response.status_code
    if status == 401:
        # The browser is already past our sign-in: a refusal means our token is wrong.
        # (A 403 is about the user, e.g. another user's dataset, and reaches them unchanged.)
        body = ErrorBody(
            error=f"the {service} service refused the web app's admin token "
            "(check CHIMP_AUTH__TOKEN is the same for every service)",
            code="backend_auth",
        )
        status = 502
    elif status >= 500 and status != 503:
        body = ErrorBody(
            error=f"the {service} service failed: {body.error}", code=body.code, detail=body.detail
        )
        status = 502
    return status, body


def raise_for_error(service: str, response: httpx.Response) -> None:
    if response.status_code >= 400:
        status, body = error_body(service, response)
        raise BackendError(status, body)


def passthrough(service: str, response: httpx.Response) -> Response:
    """Hand a backend's answer to the browser unchanged, errors in our error shape."""
    if response.status_code >= 400:
        status, body = error_body(service, response)
        return Response(body.model_dump_json(), status_code=status, media_type="application/json")
    return Response(
        response.content,
        status_code=response.status_code,
        media_type=response.headers.get("content-type", "application/json"),
    )


@dataclass(frozen=True)
class Backends:
    training: Backend
    serving: Backend


@asynccontextmanager
async def open_backends(
    settings: FrontendSettings,
    *,
    training_transport: httpx.AsyncBaseTransport | None = None,
    serving_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Backends]:
    """Both clients for the lifetime of the app; transports are a seam for tests."""
    cfg = settings.frontend
    headers = {"user-agent": "chimp-frontend"}
    if settings.auth.token is not None:
        headers["authorization"] = f"Bearer {settings.auth.token.get_secret_value()}"
    timeout = httpx.Timeout(cfg.request_timeout_s, connect=5.0)
    async with (
        httpx.AsyncClient(
            base_url=cfg.training_url,
            headers=headers,
            timeout=timeout,
            transport=training_transport,
        ) as training,
        httpx.AsyncClient(
            base_url=cfg.serving_url, headers=headers, timeout=timeout, transport=serving_transport
        ) as serving,
    ):
        yield Backends(training=Backend("training", training), serving=Backend("serving", serving))
