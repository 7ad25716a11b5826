"""MLflow's exceptions as CHIMP errors, and the HTTP retry policy that keeps failures quick."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import requests
from mlflow.exceptions import MlflowException

from chimp.shared.errors import (
    BadRequestError,
    ChimpError,
    ConflictError,
    DependencyUnavailableError,
    NotFoundError,
)

# MLflow reads its HTTP retry policy from the environment on every request and offers no
# per-client setting. Its defaults (7 retries, exponential backoff, 120 s timeout) make a down
# server look like a hang for minutes; these fail within seconds. An operator's own env wins.
_HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # MlflowClient.set_terminated writes run URLs to stdout, where a training subprocess may
    # be speaking a protocol to its parent.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def apply_http_defaults() -> None:
    """Set CHIMP's MLflow HTTP policy in the environment, unless the operator set their own."""
    for key, value in _HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def is_unreachable(exc: Exception) -> bool:
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    if not isinstance(exc, MlflowException):
        return False
    if exc.error_code == "TEMPORARILY_UNAVAILABLE":
        return True
    # rest_utils.http_request turns every transport failure (refused, reset, retries
    # exhausted on 5xx, timeout) into a plain MlflowException with this wording.
    message = exc.message
    return message.startswith("API request to") and (
        "failed with exception" in message or "timeout" in message
    )


def translate(exc: Exception, uri: str) -> ChimpError | None:
    """The CHIMP error for an exception from MLflow's client, or None to let it through."""
    if is_unreachable(exc):
        return DependencyUnavailableError(
            f"MLflow at {uri} is unreachable", detail={"dependency": "mlflow", "error": str(exc)}
        )
    if isinstance(exc, MlflowException):
        message = exc.message
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return NotFoundError(message)
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            return ConflictError(message)
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            return BadRequestError(message)
    return None


class _HasTrackingUri(Protocol):
    tracking_uri: str


S = TypeVar("S", bound=_HasTrackingUri)
P = ParamSpec("P")
R = TypeVar("R")


def mlflow_call(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Turn MLflow's exceptions into CHIMP errors, naming the server when it is down."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except ChimpError:
            raise
        except Exception as exc:
            mapped = translate(exc, self.tracking_uri)
            if mapped is None:
                raise
            raise mapped from exc

    return wrapper
