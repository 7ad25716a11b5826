"""Hold a fake service to the real one's committed OpenAPI document.

:class:`ContractChecked` wraps a fake's ASGI app. Every request it serves must be an operation
of the real document, and every JSON answer must match the schema the real document declares
for that status. What does not is recorded in ``problems``; the fixtures using fakes fail the
test when any is left, so a fake cannot drift from the service it stands in for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"


@cache
def committed_document(service: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS / f"{service}.json").read_text(encoding="utf-8"))
    return document


@dataclass(frozen=True)
class Operation:
    template: str
    pattern: re.Pattern[str]
    placeholders: int
    spec: dict[str, Any]


def _compile(template: str) -> re.Pattern[str]:
    regex = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            # FastAPI documents a ``{path:path}`` parameter as ``{path}``; it spans slashes.
            regex += "(.+)" if part == "{path}" else "([^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(f"^{regex}$")


def operations(document: dict[str, Any], method: str) -> list[Operation]:
    found = [
        Operation(path, _compile(path), path.count("{"), ops[method])
        for path, ops in document["paths"].items()
        if method in ops
    ]
    # Literal segments win over placeholders (/tasks/poll/{id} before /tasks/{id}).
    return sorted(found, key=lambda op: op.placeholders)


def response_problem(
    document: dict[str, Any], method: str, path: str, status: int, body: bytes, media: str
) -> str | None:
    """Why this answer would not come from the real service; None when it could."""
    where = f"{method.upper()} {path}"
    operation = next((op for op in operations(document, method) if op.pattern.match(path)), None)
    if operation is None:
        return f"{where}: the real API has no such operation"
    responses = operation.spec.get("responses", {})
    declared = responses.get(str(status)) or responses.get("default")
    if declared is None and status == 500 and "ErrorBody" in document["components"]["schemas"]:
        # Any route can fail unexpectedly; the one error handler still answers an ErrorBody.
        declared = {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        }
    if declared is None:
        return f"{where}: the real API never answers {status} ({sorted(responses)})"
    schema = declared.get("content", {}).get("application/json", {}).get("schema")
    if schema is None or not media.startswith("application/json"):
        return None
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return f"{where}: {status} body is not JSON"
    root = {**schema, "components": document.get("components", {})}
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(root).iter_errors(value)
    )
    if error is not None:
        return f"{where} -> {status}: {error.message} at {list(error.absolute_path)}"
    return None


@dataclass
class ContractChecked:
    """An ASGI app that checks each exchange with ``app`` against ``service``'s document."""

    app: ASGIApp
    service: str
    problems: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        media = ""
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, media
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                media = headers.get("content-type", "")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        problem = response_problem(
            committed_document(self.service),
            scope["method"].lower(),
            scope["path"],
            status,
            b"".join(chunks),
            media,
        )
        if problem is not None:
            self.problems.append(f"fake {self.service}: {problem}")
