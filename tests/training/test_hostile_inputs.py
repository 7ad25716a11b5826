"""Inputs found by fuzzing the training API: each is a clear 4xx in the error shape, never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx

from chimp.shared.registry import ModelRegistry
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.training.conftest import SettingsFactory, api_client

LABELS = ["a", "b"]
SPEC = InputSpec(height=4, width=4)


def _error_shape(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error", "code", "detail"}
    return dict(body)


async def test_task_list_offset_past_redis_range_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/tasks", params={"offset": 9223372036854775807})
    assert response.status_code == 422
    body = _error_shape(response)
    assert body["code"] == "validation_error"
    assert "query.offset" in str(body["error"])


async def test_task_list_large_but_valid_offset_is_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/tasks", params={"offset": 1_000_000_000})
    assert response.status_code == 200
    assert response.json() == []


async def test_body_that_is_not_a_json_object_names_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/tasks/run/emotion_recognition",
        content=b"[1, 2]",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert _error_shape(response)["error"] == "invalid request: body"


async def test_artifact_that_is_a_folder_is_400_not_500(
    make_settings: SettingsFactory,
    mlflow_uri: str,
    registry: ModelRegistry,
    model_name: str,
    tmp_path: Path,
    redis_client: object,
) -> None:
    onnx = make_tiny_onnx(tmp_path / "m.onnx", LABELS, SPEC)
    metadata = ModelMetadata(task="image-classification", labels=LABELS, input=SPEC)
    version = registry.log_model_version(model_name, onnx, metadata).version
    async with api_client(make_settings(mlflow_uri=mlflow_uri)) as client:
        base = f"/models/{model_name}/versions/{version}/artifacts"
        for folder in ("model", "model/", "%2E"):  # %2E: a "." the client does not collapse
            response = await client.get(f"{base}/{folder}")
            assert response.status_code == 400, (folder, response.text)
            assert _error_shape(response)["code"] == "bad_request"
        response = await client.get(f"{base}/model/model.onnx")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"


async def test_openapi_declares_the_400s_of_name_checks(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "400" in paths["/datasets/{name}"]["get"]["responses"]
    assert "400" in paths["/datasets/{name}"]["delete"]["responses"]
    assert "400" in paths["/tasks/run/{plugin_name}"]["post"]["responses"]
    assert "422" in paths["/tasks"]["get"]["responses"]
