"""Inputs found by fuzzing the web app's /api: path parameters reach training as the same
values whatever characters they hold, and bad input is a 4xx in the error shape."""

from __future__ import annotations

import httpx
import pytest

from chimp.frontend.clients import upstream_path
from tests.frontend.fakes import TrainingState, version


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (("tasks", "abc"), "/tasks/abc"),
        (("tasks", "a?b#c"), "/tasks/a%3Fb%23c"),
        (("models", "a/b", "versions"), "/models/a%2Fb/versions"),
        (("models", "..", "versions"), "/models/%2E%2E/versions"),
        (("tasks", "\x01 é"), "/tasks/%01%20%C3%A9"),
    ],
)
def test_each_segment_is_encoded_whole(segments: tuple[str, ...], expected: str) -> None:
    assert upstream_path(*segments) == expected


@pytest.mark.parametrize("task_id", ["x?limit=1", "x#y", "\x17", "\x7f\u00e9"])
async def test_odd_task_ids_are_asked_about_not_reshaped(
    client: httpx.AsyncClient, task_id: str
) -> None:
    encoded = upstream_path(task_id)[1:]
    response = await client.get(f"/api/tasks/{encoded}")
    assert response.status_code == 404
    assert response.json()["error"] == f"unknown task '{task_id}'"
    response = await client.post(f"/api/tasks/{encoded}/cancel")
    assert response.status_code == 404
    assert response.json()["error"] == f"unknown task '{task_id}'"


async def test_control_characters_in_names_are_not_a_server_error(
    client: httpx.AsyncClient,
) -> None:
    for url in (
        "/api/models/%7F%17/versions",
        "/api/models/%18y%3C/versions/0/artifacts",
        "/api/models/%18y%3C/versions/0/artifacts/%01",
        "/api/tasks/run/%0A",
    ):
        response = await client.request("POST" if "run" in url else "GET", url, json={})
        # The fake lists artifacts of any version; everything else is unknown to it.
        expected = 200 if url.endswith("/artifacts") else 404
        assert response.status_code == expected, (url, response.text)
        assert response.headers["content-type"] == "application/json"


async def test_dot_segments_in_an_artifact_path_stay_inside_the_version(
    client: httpx.AsyncClient, training_state: TrainingState
) -> None:
    training_state.versions = [version("1", "production")]
    response = await client.get(
        "/api/models/emotion-recognition/versions/1/artifacts/%2E%2E/%2E%2E/%2E%2E/tasks"
    )
    assert response.status_code == 404
    assert response.json()["error"] == "no artifact '../../../tasks'"
    ok = await client.get(
        "/api/models/emotion-recognition/versions/1/artifacts/confusion_matrix.png"
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("bad", ["00", "-1", "abc", ""])
async def test_alias_version_is_checked_here_and_declared(
    client: httpx.AsyncClient, bad: str
) -> None:
    response = await client.post(
        "/api/models/emotion-recognition/aliases/production", json={"version": bad}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "version"]
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["schemas"]["AliasRequest"]["properties"]["version"]["pattern"]
