"""The training API without a worker: contracts, validation, datasets, auth, task state."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from chimp.training.config import TrainingSettings
from tests.training.conftest import SettingsFactory, api_client


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


async def upload(client: httpx.AsyncClient, name: str, data: bytes, **form: str) -> httpx.Response:
    return await client.post(
        "/datasets",
        files={"file": ("data.zip", data, "application/zip")},
        data={"dataset_name": name, **form},
    )


async def test_ping_and_liveness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ping")).text == "pong"
    assert (await client.get("/health/live")).json()["status"] == "ok"


async def test_readiness_names_the_dependency_that_is_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"]
    assert checks["datastore"]["ok"]
    assert not checks["mlflow"]["ok"]


async def test_plugins_are_listed_with_an_argument_schema(client: httpx.AsyncClient) -> None:
    plugins = {p["name"]: p for p in (await client.get("/plugins")).json()}
    assert {"example", "emotion_recognition", "image_classification"} <= set(plugins)
    emotion = plugins["emotion_recognition"]
    assert emotion["argument_schema"]["properties"]["epochs"]["anyOf"][0]["type"] == "integer"
    assert [d["name"] for d in emotion["datasets"]] == ["train"]
    one = (await client.get("/plugins/example")).json()
    assert one["argument_schema"]["required"] == ["greeting"]


async def test_unknown_plugin_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/plugins/nope")).status_code == 404
    response = await client.post("/tasks/run/nope", json={})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_dataset_upload_list_manifest_delete(client: httpx.AsyncClient) -> None:
    data = make_zip({"train/happy/a.png": b"x" * 10, "train/sad/b.png": b"y" * 5})
    created = await upload(client, "faces", data)
    assert created.status_code == 201, created.text
    assert created.json()["files"] == 2
    assert [d["name"] for d in (await client.get("/datasets")).json()] == ["faces"]
    manifest = (await client.get("/datasets/faces")).json()
    assert sorted(e["path"] for e in manifest["entries"]) == [
        "train/happy/a.png",
        "train/sad/b.png",
    ]
    assert (await upload(client, "faces", data)).status_code == 409
    assert (await upload(client, "faces", data, overwrite="true")).status_code == 201
    assert (await client.delete("/datasets/faces")).status_code == 204
    assert (await client.get("/datasets/faces")).status_code == 404
    assert (await client.delete("/datasets/faces")).status_code == 404


@pytest.mark.parametrize(
    ("name", "payload", "status"),
    [
        ("../evil", make_zip({"a.txt": b"1"}), 400),
        ("ok-name", b"this is not a zip", 422),
        ("ok-name", b"", 422),
        ("ok-name", make_zip({"../escape.txt": b"1"}), 422),
    ],
    ids=["bad-name", "not-a-zip", "empty", "path-traversal"],
)
async def test_bad_uploads_are_refused(
    client: httpx.AsyncClient, name: str, payload: bytes, status: int
) -> None:
    response = await upload(client, name, payload)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert (await client.get("/datasets")).json() == []


async def test_upload_without_file_or_name_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/datasets", data={"dataset_name": "x"})
    assert response.status_code == 422
    assert "file" in response.json()["error"]
    response = await client.post("/datasets", files={"file": ("a.zip", b"PK", "application/zip")})
    assert response.status_code == 422
    assert "dataset_name" in response.json()["error"]


async def test_upload_over_the_size_limit_is_413(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    settings = make_settings()
    settings.datastore.max_upload_bytes = 1024
    async with api_client(settings) as client:
        response = await upload(client, "big", make_zip({"a.bin": bytes(range(256)) * 40}))
        assert response.status_code == 413
        assert (await client.get("/datasets")).json() == []


async def _queued_jobs(settings: TrainingSettings, redis_client: aioredis.Redis) -> int:
    return int(await redis_client.zcard(settings.training.queue_name))


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        ({"arguments": {}}, {"arguments.greeting"}),
        ({"arguments": {"greeting": 3}}, {"arguments.greeting"}),
        ({"arguments": {"greeting": "hi", "steps": "5"}}, {"arguments.steps"}),
        ({"arguments": {"greeting": "hi", "steps": 2.5}}, {"arguments.steps"}),
        ({"arguments": {"greeting": "hi", "fail": 1}}, {"arguments.fail"}),
        ({"arguments": {"greeting": "hi", "mode": "other"}}, {"arguments.mode"}),
        ({"arguments": {"greeting": "hi", "typo": 1}}, {"arguments.typo"}),
        ({"arguments": {"greeting": "hi"}, "datasets": {"other": "x"}}, {"datasets.other"}),
        ({"arguments": {"greeting": "hi"}, "datasets": {"data": "missing"}}, {"datasets.data"}),
        ({"arguments": {"greeting": "hi"}, "user_id": "no spaces"}, {"user_id"}),
        (
            {"arguments": {"steps": "x", "extra": True}, "datasets": {"zzz": "q"}},
            {"arguments.greeting", "arguments.steps", "arguments.extra", "datasets.zzz"},
        ),
    ],
    ids=[
        "missing-required",
        "wrong-type-str",
        "string-for-int",
        "float-for-int",
        "int-for-bool",
        "not-a-choice",
        "unknown-argument",
        "unknown-dataset-key",
        "dataset-not-stored",
        "bad-user-id",
        "all-at-once",
    ],
)
async def test_bad_task_requests_are_422_and_queue_nothing(
    client: httpx.AsyncClient,
    settings: TrainingSettings,
    redis_client: aioredis.Redis,
    body: dict[str, Any],
    bad_fields: set[str],
) -> None:
    response = await client.post("/tasks/run/example", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_error"
    assert {".".join(d["loc"]) for d in error["detail"]} == bad_fields
    assert (await client.get("/tasks")).json() == []
    assert await _queued_jobs(settings, redis_client) == 0


async def test_required_dataset_missing_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/tasks/run/emotion_recognition", json={"arguments": {}})
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["detail"]] == [["datasets", "train"]]


async def test_unknown_request_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/tasks/run/example", json={"arguments": {}, "argumnets": {}})
    assert response.status_code == 422


async def test_task_state_lives_in_redis_across_api_restarts(
    settings: TrainingSettings, redis_client: aioredis.Redis
) -> None:
    async with api_client(settings) as first:
        response = await first.post("/tasks/run/example", json={"arguments": {"greeting": "hi"}})
        assert response.status_code == 202, response.text
        task = response.json()
        assert task["status"] == "queued"
        assert task["arguments"] == {
            "greeting": "hi", "steps": 5, "duration_s": 0.0, "fail": False, "mode": "count"
        }  # fmt: skip
    assert await _queued_jobs(settings, redis_client) == 1
    async with api_client(settings) as second:
        again = (await second.get(f"/tasks/{task['task_id']}")).json()
        assert again["status"] == "queued"
        assert [t["task_id"] for t in (await second.get("/tasks")).json()] == [task["task_id"]]
        poll = (await second.get(f"/tasks/poll/{task['task_id']}")).json()
        assert poll == {"ready": False, "successful": False, "value": None}

        cancelled = await second.post(f"/tasks/{task['task_id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        assert (await second.post(f"/tasks/{task['task_id']}/cancel")).status_code == 409
        poll = (await second.get(f"/tasks/poll/{task['task_id']}")).json()
        assert poll["ready"] is True
        assert poll["successful"] is False


async def test_unknown_task_is_404(client: httpx.AsyncClient) -> None:
    for path in ("/tasks/nope", "/tasks/poll/nope"):
        assert (await client.get(path)).status_code == 404
    assert (await client.post("/tasks/nope/cancel")).status_code == 404


async def test_mutating_routes_need_the_token(
    make_settings: SettingsFactory, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = make_settings()
    settings.auth.token = SecretStr("s3cret")
    async with api_client(settings) as client:
        assert (await client.get("/plugins")).status_code == 200
        denied = [
            await client.get("/datasets"),
            await client.get("/datasets/x"),
            await client.post("/tasks/run/example", json={"arguments": {"greeting": "x"}}),
            await upload(client, "x", make_zip({"a": b"1"})),
            await client.delete("/datasets/x"),
            await client.post("/tasks/x/cancel"),
            await client.post("/models/m/aliases/production", json={"version": "1"}),
        ]
        assert [r.status_code for r in denied] == [401] * len(denied)
        ok = await client.post(
            "/tasks/run/example",
            json={"arguments": {"greeting": "x"}},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert ok.status_code == 202


async def test_alias_names_are_checked(client: httpx.AsyncClient) -> None:
    response = await client.post("/models/m/aliases/champion", json={"version": "1"})
    assert response.status_code == 400
    response = await client.post("/models/m/aliases/production", json={"version": "one"})
    assert response.status_code == 422


async def test_openapi_declares_operations_and_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    run = spec["paths"]["/tasks/run/{plugin_name}"]["post"]
    assert run["operationId"] == "run_task"
    assert {"202", "404", "422"} <= set(run["responses"])
    assert "413" in spec["paths"]["/datasets"]["post"]["responses"]


@pytest.mark.parametrize(
    ("plugin", "arguments", "bad_field"),
    [
        ("emotion_recognition", {"epochs": -5}, "epochs"),
        ("emotion_recognition", {"epochs": 0}, "epochs"),
        ("emotion_recognition", {"learning_rate": 0}, "learning_rate"),
        ("emotion_recognition", {"validation_split": 1.0}, "validation_split"),
        ("emotion_recognition", {"batch_size": 0}, "batch_size"),
        ("image_classification", {"model_name": "m", "epochs": -1}, "epochs"),
        ("example", {"greeting": "hi", "steps": 0}, "steps"),
    ],
)
async def test_values_a_builtin_plugin_cannot_use_are_422_before_queueing(
    client: httpx.AsyncClient,
    settings: TrainingSettings,
    redis_client: aioredis.Redis,
    plugin: str,
    arguments: dict[str, Any],
    bad_field: str,
) -> None:
    assert (await upload(client, "faces", make_zip({"train/happy/a.png": b"x"}))).is_success
    datasets = {} if plugin == "example" else {"train": "faces"}
    response = await client.post(
        f"/tasks/run/{plugin}", json={"arguments": arguments, "datasets": datasets}
    )
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["detail"]] == [["arguments", bad_field]]
    assert bad_field in response.json()["error"]
    assert (await client.get("/tasks")).json() == []
    assert await _queued_jobs(settings, redis_client) == 0


async def test_argument_bounds_are_in_the_plugin_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/plugins/emotion_recognition")).json()["argument_schema"]

    def branch(name: str) -> dict[str, Any]:
        prop: dict[str, Any] = schema["properties"][name]
        return next(p for p in prop.get("anyOf", [prop]) if p.get("type") != "null")

    assert branch("epochs")["minimum"] == 1
    assert branch("learning_rate")["exclusiveMinimum"] == 0
    assert branch("validation_split")["exclusiveMinimum"] == 0
    assert branch("validation_split")["exclusiveMaximum"] == 1
    assert branch("mode")["enum"] == ["train", "calibrate"]


async def test_a_non_zip_upload_is_named_as_the_user_sent_it(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/datasets",
        files={"file": ("holiday photo.png", b"\x89PNG not a zip", "image/png")},
        data={"dataset_name": "faces"},
    )
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert message.startswith("holiday photo.png is not a zip file"), message
    assert "upload.zip" not in message
    assert "train/<label>/" in message  # the rule: what a dataset zip looks like
