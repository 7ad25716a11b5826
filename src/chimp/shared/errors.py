"""The CHIMP error hierarchy and the one handler that renders every error as JSON.

Raise a :class:`ChimpError` subclass anywhere below a route; :func:`install_error_handlers`
turns it into ``{"error", "code", "detail"}`` with the right status. Request validation errors
and stray ``HTTPException``s get the same shape, so clients parse one thing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chimp.shared.schemas.base import ErrorBody

logger = logging.getLogger(__name__)


class ChimpError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def body(self) -> ErrorBody:
        return ErrorBody(error=self.message, code=self.code, detail=self.detail)


class BadRequestError(ChimpError):
    status_code = 400
    code = "bad_request"


class UnauthorizedError(ChimpError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(ChimpError):
    """Who is asking is known, but this is not theirs to touch."""

    status_code = 403
    code = "forbidden"


class NotFoundError(ChimpError):
    status_code = 404
    code = "not_found"


class ConflictError(ChimpError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ChimpError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(ChimpError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidInputError(ChimpError):
    """Input that parsed but makes no sense (bad zip, corrupt image, wrong tensor shape)."""

    status_code = 422
    code = "invalid_input"


class ValidationFailedError(ChimpError):
    """Field-level validation failed; ``detail`` lists ``{"loc", "msg"}`` per bad field."""

    status_code = 422
    code = "validation_error"


class InsufficientStorageError(ChimpError):
    """The disk filled up while storing what was sent; nothing of it was kept."""

    status_code = 507
    code = "insufficient_storage"


class DependencyUnavailableError(ChimpError):
    """A service we depend on (Redis, MLflow, the datastore, another CHIMP service) is down."""

    status_code = 503
    code = "dependency_unavailable"


def error_responses(*errors: type[ChimpError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the errors a route can raise."""
    out: dict[int | str, dict[str, Any]] = {}
    for err in errors:
        out[err.status_code] = {"model": ErrorBody, "description": err.__doc__ or err.code}
    return out


def _json(status: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content=body.model_dump(mode="json"), headers=dict(headers or {})
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]


async def _chimp_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChimpError)
    if exc.status_code >= 500:
        logger.warning("%s: %s", exc.code, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    return _json(exc.status_code, exc.body(), headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = _field_errors(exc)
    # An empty loc is the whole body (not JSON, or JSON that is not an object).
    names = ", ".join(".".join(f["loc"]) or "body" for f in fields) or "body"
    return _json(
        422, ErrorBody(error=f"invalid request: {names}", code="validation_error", detail=fields)
    )


_HTTP_CODES = {404: NotFoundError.code, 413: PayloadTooLargeError.code}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return _json(exc.status_code, ErrorBody(error=str(exc.detail), code=code), exc.headers)


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return _json(500, ErrorBody(error="internal server error", code="internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChimpError, _chimp_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
