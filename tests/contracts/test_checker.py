"""The contract checker itself: it must catch the drift it exists for."""

from __future__ import annotations

import json

from tests.contracts.checker import committed_document, response_problem


def _problem(service: str, method: str, path: str, status: int, body: object) -> str | None:
    return response_problem(
        committed_document(service),
        method,
        path,
        status,
        json.dumps(body).encode(),
        "application/json",
    )


def test_a_list_where_serving_answers_an_object_is_caught() -> None:
    problem = _problem("serving", "get", "/models", 200, [{"name": "m", "aliases": {}}])
    assert problem is not None
    assert "/models" in problem


def test_an_operation_the_real_api_lacks_is_caught() -> None:
    assert "no such operation" in (_problem("training", "get", "/nothing/here", 200, {}) or "")


def test_a_status_the_real_api_never_answers_is_caught() -> None:
    assert "never answers 418" in (_problem("training", "get", "/plugins", 418, {}) or "")


def test_a_real_shaped_answer_passes() -> None:
    info = {"name": "d", "files": 1, "size_bytes": 3, "created_at": "2026-01-01T00:00:00Z"}
    assert _problem("training", "get", "/datasets", 200, [info]) is None
    error = {"error": "no", "code": "not_found", "detail": None}
    assert _problem("training", "get", "/tasks/abc", 404, error) is None
