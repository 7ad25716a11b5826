"""Edge guards every service installs: request body limits and CORS.

:class:`BodyLimitMiddleware` refuses a body over its limit while it arrives: at once when
``Content-Length`` already says so, else as soon as the bytes read pass the limit, so no
handler (or multipart parser spooling to disk) ever holds more. The 413 is our JSON error
shape and names the limit.

CORS is closed by default: browsers may call a service only from its own origin. Origins
listed in ``CHIMP_CORS__ALLOW_ORIGINS`` are let in (see :func:`install_cors`).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chimp.shared.errors import PayloadTooLargeError
from chimp.shared.settings import CorsConfig

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""JSON bodies and forms: a megabyte is far more than any honest request needs."""
MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries and form fields around an uploaded file."""


class _BodyTooLargeError(StarletteHTTPException):
    """Raised from ``receive``. An HTTPException, because FastAPI turns any other error while
    reading a body into a 400; this one reaches the error handler as the 413 it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit} bytes")


class BodyLimitMiddleware:
    """Limit request bodies to ``default_bytes``, or to ``routes[(method, path)]`` there."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_bytes: int = DEFAULT_MAX_BODY_BYTES,
        routes: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.routes = dict(routes or {})

    def limit_for(self, scope: Scope) -> int:
        return self.routes.get((scope["method"], scope["path"]), self.default_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(limit, scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if started:
                raise
            await _refuse(limit, scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    error = PayloadTooLargeError(
        f"request body larger than the limit of {limit} bytes", detail={"limit": limit}
    )
    body = error.body().model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_cors(app: FastAPI, config: CorsConfig) -> None:
    """Let browsers on ``config.allow_origins`` call ``app``; nobody when the list is empty."""
    if not config.allow_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(config.allow_origins),
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["authorization", "content-type"],
        allow_credentials=config.allow_credentials,
        max_age=600,
    )
