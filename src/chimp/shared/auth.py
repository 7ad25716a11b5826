"""Token auth for mutating and admin endpoints.

Auth is on when a token is configured (``CHIMP_AUTH__TOKEN``). The embedded default
(``chimp up``) generates one on first run with :func:`ensure_token_file` and hands it to every
service; the front-end backend sends it on its calls. Clients send ``Authorization: Bearer <t>``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import Request
from pydantic import SecretStr

from chimp.shared.errors import UnauthorizedError

TOKEN_FILE_NAME = "admin-token"  # noqa: S105 - a file name, not a secret


def ensure_token_file(data_dir: Path) -> str:
    """Read the admin token under ``data_dir``, creating a random one (mode 0600) if absent."""
    path = data_dir / TOKEN_FILE_NAME
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token


def token_from_request(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.headers.get("x-chimp-token")


def check_token(expected: SecretStr | None, presented: str | None) -> None:
    """Raise :class:`UnauthorizedError` unless auth is off or ``presented`` matches."""
    if expected is None:
        return
    if presented is None:
        raise UnauthorizedError("missing bearer token (Authorization: Bearer <token>)")
    if not secrets.compare_digest(presented.encode(), expected.get_secret_value().encode()):
        raise UnauthorizedError("invalid token")


def require_token(expected: SecretStr | None) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that enforces ``expected`` on the routes it guards."""

    async def dependency(request: Request) -> None:
        check_token(expected, token_from_request(request))

    return dependency
