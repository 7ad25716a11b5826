"""The serving API against a real MLflow server: predictions, alias moves, v2, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from chimp.serving.app import create_app
from chimp.shared.model_fit import ModelMismatchError
from chimp.shared.registry import PRODUCTION, ModelRegistry, sync, user_alias
from chimp.shared.settings import AuthConfig
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.serving.conftest import (
    EMOTIONS,
    FACE_SPEC,
    TcpProxy,
    emotion_metadata,
    register_version,
    serve,
    serving_settings,
)


async def test_predict_image_finds_the_astronauts_face(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path, astronaut_jpeg: bytes
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        multipart = await client.post(
            f"/models/{model_name}/predict-image",
            files={"file": ("astronaut.jpg", astronaut_jpeg, "image/jpeg")},
        )
        raw = await client.post(
            f"/models/{model_name}/predict-image",
            content=astronaut_jpeg,
            headers={"content-type": "image/jpeg"},
        )
        whole = await client.post(
            f"/models/{model_name}/predict-image?mode=whole",
            content=astronaut_jpeg,
            headers={"content-type": "image/jpeg"},
        )

    assert multipart.status_code == 200, multipart.text
    body = multipart.json()
    assert body["model"] == {"name": model_name, "version": "1", "alias": "production"}
    assert (body["mode"], body["width"], body["height"]) == ("faces", 640, 480)
    assert len(body["faces"]) == 1
    face = body["faces"][0]
    assert list(face["scores"]) == EMOTIONS
    assert abs(sum(face["scores"].values()) - 1.0) < 1e-4
    assert face["label"] == max(face["scores"], key=face["scores"].get)
    # The astronaut's face is in the upper middle of the letterboxed frame.
    assert 160 < face["box"]["x"] + face["box"]["w"] / 2 < 480
    assert face["box"]["y"] < 240
    assert raw.json()["faces"] == body["faces"]
    assert whole.json()["mode"] == "whole"
    assert whole.json()["faces"][0]["box"] is None


async def test_moving_production_serves_the_new_version_without_restart(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path, astronaut_jpeg: bytes
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    second = register_version(registry, model_name, tmp_path, seed=2, alias=None)
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        predict = f"/models/{model_name}/predict-image"
        before = await client.post(predict, content=astronaut_jpeg)
        registry.set_alias(model_name, PRODUCTION, second.version)
        after = await wait_for_v2_version(client, model_name, second.version)
        answered = await client.post(predict, content=astronaut_jpeg)
        listing = (await client.get("/models")).json()
        metrics = (await client.get("/metrics")).text
        pinned = await client.post(f"{predict}?version=1", content=astronaut_jpeg)

    assert before.json()["model"]["version"] == "1"
    assert after == second.version
    assert answered.json()["model"]["version"] == second.version
    assert answered.json()["faces"][0]["scores"] != before.json()["faces"][0]["scores"]
    assert listing["models"][0]["aliases"] == {"production": second.version}
    assert f'chimp_serving_model_version{{alias="production",model="{model_name}"}} 2.0' in metrics
    assert pinned.json()["model"] == {"name": model_name, "version": "1", "alias": None}


async def wait_for_v2_version(client: httpx.AsyncClient, name: str, version: str) -> str:
    response = await wait_for_version_metadata(client, name, version)
    return str(response.json()["parameters"]["version"])


async def wait_for_version_metadata(
    client: httpx.AsyncClient, name: str, version: str
) -> httpx.Response:
    response = await client.get(f"/v2/models/{name}")
    for _ in range(100):
        if response.json().get("parameters", {}).get("version") == version:
            break
        await asyncio.sleep(0.1)
        response = await client.get(f"/v2/models/{name}")
    return response


async def test_open_inference_protocol_round_trip(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    rng = np.random.default_rng(0)
    batch = rng.random((2, 1, 48, 48), dtype=np.float32)
    tensor = {"name": "input", "shape": [2, 1, 48, 48], "datatype": "FP32"}
    request = {
        "id": "req-42",
        "inputs": [{**tensor, "data": batch.ravel().tolist()}],
        "outputs": [{"name": "logits"}],
    }
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        live = await client.get("/v2/health/live")
        ready = await client.get("/v2/health/ready")
        server = (await client.get("/v2")).json()
        meta = (await client.get(f"/v2/models/{model_name}")).json()
        version_meta = await client.get(f"/v2/models/{model_name}/versions/1")
        model_ready = await client.get(f"/v2/models/{model_name}/ready")
        version_ready = await client.get(f"/v2/models/{model_name}/versions/1/ready")
        flat = (await client.post(f"/v2/models/{model_name}/infer", json=request)).json()
        nested_request = {"inputs": [{**tensor, "data": batch.tolist()}]}
        nested = await client.post(f"/v2/models/{model_name}/versions/1/infer", json=nested_request)
        metrics = (await client.get("/metrics")).text
        openapi = (await client.get("/openapi.json")).json()

    assert (live.status_code, ready.status_code) == (200, 200)
    assert server["name"] == "chimp-serving"
    assert "version" in server
    assert meta["name"] == model_name
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 48, 48]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 7]}]
    assert meta["parameters"]["labels"] == EMOTIONS
    assert version_meta.status_code == 200
    assert (model_ready.status_code, version_ready.status_code) == (200, 200)
    assert flat["model_name"] == model_name
    assert flat["model_version"] == "1"
    assert flat["id"] == "req-42"
    (output,) = flat["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("logits", "FP32", [2, 7])
    assert len(output["data"]) == 14
    assert nested.status_code == 200
    assert np.allclose(nested.json()["outputs"][0]["data"], output["data"], atol=1e-5)
    assert "id" not in nested.json()
    # Infer is served by lean routes: still counted under its template and still documented.
    assert 'route="/v2/models/{name}/infer",status="200"' in metrics
    assert 'route="/v2/models/{name}/versions/{version}/infer",status="200"' in metrics
    documented = openapi["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]
    assert documented["operationId"] == "v2_version_infer"
    assert [p["name"] for p in documented["parameters"]] == ["name", "version"]
    assert "application/json" in documented["requestBody"]["content"]


def references(node: object) -> Iterator[str]:
    """Every ``$ref`` value anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def resolve(document: dict[str, Any], ref: str) -> object:
    """The node a local reference (``#/a/b``) points at; KeyError when there is none."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_every_openapi_reference_resolves(tmp_path: Path) -> None:
    # The document needs no model and no registry: the app is asked without its lifespan.
    app = create_app(serving_settings(tmp_path, "http://127.0.0.1:9", "no-model"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
        document = (await client.get("/openapi.json")).json()

    refs = set(references(document))
    unresolved = []
    for ref in sorted(refs):
        try:
            resolve(document, ref)
        except KeyError:
            unresolved.append(ref)
    assert unresolved == []
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": "#/components/schemas/V2InferenceRequest"}
    assert "#/components/schemas/V2RequestInput" in refs


async def test_bad_input_gets_a_clear_4xx(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path, astronaut_jpeg: bytes
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    good = {"name": "input", "shape": [1, 1, 48, 48], "datatype": "FP32", "data": [0.5] * 2304}
    predict = f"/models/{model_name}/predict-image"
    infer = f"/v2/models/{model_name}/infer"
    settings = serving_settings(tmp_path, mlflow_uri, model_name, max_upload_bytes=10 * 2**20)
    async with serve(settings) as client:
        cases: dict[str, httpx.Response] = {
            "not an image": await client.post(predict, content=b"hello, I am text"),
            "truncated jpeg": await client.post(
                predict, content=astronaut_jpeg[: len(astronaut_jpeg) // 2]
            ),
            "50 MB upload": await client.post(
                predict,
                content=b"\xff\xd8\xff" + bytes(50 * 2**20),
                headers={"content-type": "image/jpeg"},
            ),
            "50 MB multipart": await client.post(
                predict, files={"file": ("big.jpg", bytes(50 * 2**20), "image/jpeg")}
            ),
            "text content type": await client.post(
                predict, content=astronaut_jpeg, headers={"content-type": "text/plain"}
            ),
            "multipart without file": await client.post(predict, files={"other": ("a", b"x")}),
            "unknown model": await client.post(
                "/models/no-such-model/predict-image", content=astronaut_jpeg
            ),
            "unknown version": await client.post(f"{predict}?version=99", content=astronaut_jpeg),
            "malformed version": await client.post(
                f"{predict}?version=abc", content=astronaut_jpeg
            ),
            "unknown alias": await client.post(f"{predict}?alias=nope", content=astronaut_jpeg),
            "version and alias": await client.post(
                f"{predict}?version=1&alias=production", content=astronaut_jpeg
            ),
            "bad mode": await client.post(f"{predict}?mode=sideways", content=astronaut_jpeg),
            "wrong shape": await client.post(
                infer, json={"inputs": [{**good, "shape": [1, 3, 48, 48], "data": [0.5] * 6912}]}
            ),
            "shape and data disagree": await client.post(
                infer, json={"inputs": [{**good, "data": [0.5] * 100}]}
            ),
            "ragged data": await client.post(
                infer, json={"inputs": [{**good, "data": [[1.0], [1.0, 2.0]]}]}
            ),
            "wrong datatype": await client.post(
                infer, json={"inputs": [{**good, "datatype": "INT64", "data": [1] * 2304}]}
            ),
            "strings as data": await client.post(
                infer, json={"inputs": [{**good, "data": ["x"] * 2304}]}
            ),
            "booleans as FP32 data": await client.post(
                infer, json={"inputs": [{**good, "data": [True] + [0.0] * 2303}]}
            ),
            "nested deeper than shape": await client.post(
                infer, json={"inputs": [{**good, "shape": [1, 2304], "data": [[[0.5] * 2304]]}]}
            ),
            "binary output flag not a boolean": await client.post(
                infer, json={"inputs": [good], "parameters": {"binary_data_output": "yes"}}
            ),
            "unknown input name": await client.post(
                infer, json={"inputs": [{**good, "name": "image"}]}
            ),
            "unknown output": await client.post(
                infer, json={"inputs": [good], "outputs": [{"name": "probs"}]}
            ),
            "unknown field": await client.post(infer, json={"inputs": [good], "extra": 1}),
            "no inputs": await client.post(infer, json={"inputs": []}),
            "not json": await client.post(
                infer, content=b"{nope", headers={"content-type": "application/json"}
            ),
            "v2 unknown model": await client.post(
                "/v2/models/no-such-model/infer", json={"inputs": [good]}
            ),
            "v2 unknown version": await client.get(f"/v2/models/{model_name}/versions/42"),
            "legacy wrong shape": await client.post(
                f"/model/{model_name}/infer", json={"inputs": [[1.0, 2.0]]}
            ),
            "legacy unknown stage": await client.get("/model?stage=archived"),
        }
        still_fine = await client.post(predict, content=astronaut_jpeg)

    expected = {
        "not an image": 422, "truncated jpeg": 422, "50 MB upload": 413, "50 MB multipart": 413,
        "text content type": 415, "multipart without file": 400, "unknown model": 404,
        "unknown version": 404, "malformed version": 400, "unknown alias": 404,
        "version and alias": 400, "bad mode": 422, "wrong shape": 400,
        "shape and data disagree": 400, "ragged data": 400, "wrong datatype": 400,
        "strings as data": 400, "booleans as FP32 data": 400, "nested deeper than shape": 400,
        "binary output flag not a boolean": 400, "unknown input name": 400, "unknown output": 400,
        "unknown field": 422, "no inputs": 422, "not json": 422, "v2 unknown model": 404,
        "v2 unknown version": 404, "legacy wrong shape": 400, "legacy unknown stage": 404,
    }  # fmt: skip
    got = {case: response.status_code for case, response in cases.items()}
    assert got == expected
    for case, response in cases.items():
        assert response.json()["error"], case  # every error says what is wrong
    assert "truncated" in cases["truncated jpeg"].json()["error"]
    assert "limit" in cases["50 MB upload"].json()["error"]
    assert "INT64" in cases["wrong datatype"].json()["error"]
    assert "'input'" in cases["booleans as FP32 data"].json()["error"]
    assert "booleans" in cases["booleans as FP32 data"].json()["error"]
    assert "'input'" in cases["nested deeper than shape"].json()["error"]
    assert "[1, 2304]" in cases["nested deeper than shape"].json()["error"]
    assert "binary_data_output" in cases["binary output flag not a boolean"].json()["error"]
    assert "production" in cases["unknown alias"].json()["error"]
    assert still_fine.status_code == 200


async def test_user_models_fall_back_to_production(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path, astronaut_jpeg: bytes
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    register_version(registry, model_name, tmp_path, seed=2, alias=user_alias("alice"))
    register_version(registry, model_name, tmp_path, seed=3, alias="staging")
    sample = np.full((1, 48, 48), 0.5).tolist()
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        predict = f"/models/{model_name}/predict-image"
        alice = await client.post(f"{predict}?user=alice", content=astronaut_jpeg)
        bob = await client.post(f"{predict}?user=bob", content=astronaut_jpeg)
        legacy_info = await client.get("/model", params={"id": "alice"})
        legacy_staging = await client.post(
            f"/model/{model_name}/infer?stage=Staging", json={"inputs": sample}
        )
        legacy_bob = await client.post(
            f"/model/{model_name}/infer", params={"id": "bob"}, json={"inputs": [sample, sample]}
        )

    assert alice.json()["model"] == {"name": model_name, "version": "2", "alias": "user-alice"}
    assert bob.json()["model"] == {"name": model_name, "version": "1", "alias": "production"}
    info = legacy_info.json()
    assert info["model"]["version"] == "2"
    assert info["labels"] == EMOTIONS
    assert info["input_shape"] == [1, 48, 48]
    staging = legacy_staging.json()
    assert staging["model"] == {"name": model_name, "version": "3", "alias": "staging"}
    assert len(staging["outputs"]) == 1
    assert len(staging["outputs"][0]) == 7
    assert staging["predictions"][0]["label"] in EMOTIONS
    assert legacy_bob.json()["model"]["version"] == "1"
    assert len(legacy_bob.json()["predictions"]) == 2


async def test_keeps_serving_when_mlflow_goes_down(
    registry: ModelRegistry,
    model_name: str,
    mlflow_proxy: TcpProxy,
    tmp_path: Path,
    astronaut_jpeg: bytes,
) -> None:
    register_version(registry, model_name, tmp_path, seed=1)
    proxied = f"http://127.0.0.1:{mlflow_proxy.port}"
    async with serve(serving_settings(tmp_path, proxied, model_name)) as client:
        assert (await client.get("/health/ready")).status_code == 200
        mlflow_proxy.cut()
        report = (await client.post("/models/reload")).json()
        predicted = await client.post(f"/models/{model_name}/predict-image", content=astronaut_jpeg)
        ready = await client.get("/health/ready")
        listing = (await client.get("/models")).json()
        never_seen = await client.post("/models/other-model/predict-image", content=astronaut_jpeg)

    assert report["registry_ok"] is False
    assert predicted.status_code == 200
    assert predicted.json()["model"]["version"] == "1"
    assert ready.status_code == 200
    assert listing["registry"]["ok"] is False
    assert never_seen.status_code == 503
    assert "unreachable" in never_seen.json()["error"]


async def test_readiness_and_admin_auth(
    model_name: str, mlflow_uri: str, tmp_path: Path, registry: ModelRegistry
) -> None:
    # The poller would race the reload: only the reload follows the registry here.
    settings = serving_settings(tmp_path, mlflow_uri, model_name, poll_interval_s=3600)
    settings.auth = AuthConfig(token=SecretStr("s3cret"))
    async with serve(settings) as client:
        # Nothing registered yet: nothing to wait for, so ready; predictions say why not.
        ready_empty = await client.get("/health/ready")
        no_model = await client.post(f"/models/{model_name}/predict-image", content=b"x")
        register_version(registry, model_name, tmp_path, seed=1)
        anonymous = await client.post("/models/reload")
        reload = await client.post("/models/reload", headers={"Authorization": "Bearer s3cret"})
        ping = await client.get("/ping")

    assert ready_empty.status_code == 200
    assert no_model.status_code in (404, 422)
    assert anonymous.status_code == 401
    assert reload.status_code == 200
    assert f"{model_name}@production: version None -> 1" in reload.json()["changes"]
    assert ping.text == "pong"


async def test_ready_reports_a_production_version_that_cannot_load(
    registry: ModelRegistry,
    model_name: str,
    mlflow_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A graph for 64x64 inputs with metadata that says 48x48: it cannot serve. Registration
    # refuses it, with the message serving gives for such a version registered before the rule.
    wrong_size = FACE_SPEC.model_copy(update={"height": 64, "width": 64})
    broken = make_tiny_onnx(tmp_path / "broken.onnx", EMOTIONS, wrong_size)
    with pytest.raises(ModelMismatchError) as refused:
        registry.log_model_version(model_name, broken, emotion_metadata())
    monkeypatch.setattr(sync, "check_onnx_matches", lambda _path, _metadata: None)
    info = registry.log_model_version(model_name, broken, emotion_metadata())
    registry.set_alias(model_name, PRODUCTION, info.version)
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        ready = await client.get("/health/ready")
        v2_ready = await client.get("/v2/health/ready")
        predicted = await client.post(f"/models/{model_name}/predict-image", content=b"x")

    message = refused.value.message
    assert "[N, 1, 64, 64]" in message
    assert "[N, 1, 48, 48]" in message
    assert ready.status_code == 503
    assert "failed to load" in ready.json()["checks"][f"model:{model_name}"]["error"]
    assert message in ready.json()["checks"][f"model:{model_name}"]["error"]
    assert v2_ready.status_code == 400
    assert predicted.status_code == 503
    assert predicted.json()["error"].endswith(message)
