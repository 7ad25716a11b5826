"""A model registered the ordinary MLflow way (``mlflow.onnx.log_model``, alias ``production``),
with no CHIMP metadata, is served from its ONNX graph; image endpoints say what is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from pydantic import SecretStr

from chimp.shared.registry import ModelRegistry
from chimp.shared.settings import AuthConfig
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.serving.conftest import (
    EMOTIONS,
    FACE_SPEC,
    emotion_metadata,
    log_plain_onnx,
    serve,
    serving_settings,
)


async def test_a_plain_mlflow_onnx_model_is_served_from_its_graph(
    registry: ModelRegistry,
    model_name: str,
    mlflow_uri: str,
    tmp_path: Path,
    astronaut_jpeg: bytes,
) -> None:
    path = make_tiny_onnx(tmp_path / "plain.onnx", EMOTIONS, FACE_SPEC, seed=4)
    version = log_plain_onnx(mlflow_uri, model_name, onnx.load(str(path)))
    batch = np.random.default_rng(2).random((2, 1, 48, 48), dtype=np.float32)
    tensor = {"name": "input", "shape": [2, 1, 48, 48], "datatype": "FP32"}
    settings = serving_settings(tmp_path, mlflow_uri, model_name)
    settings.auth = AuthConfig(token=SecretStr("t0k"))
    async with serve(settings) as client:
        meta = await client.get(f"/v2/models/{model_name}")
        infer = await client.post(
            f"/v2/models/{model_name}/infer",
            json={"inputs": [{**tensor, "data": batch.ravel().tolist()}]},
        )
        image = await client.post(f"/models/{model_name}/predict-image", content=astronaut_jpeg)
        legacy = await client.get(f"/model?name={model_name}")
        listed = (await client.get("/models")).json()
        # Metadata added afterwards (what the training API's PUT .../metadata does) is
        # picked up by the running server without a restart.
        registry.set_metadata(model_name, version, emotion_metadata())
        await client.post("/models/reload", headers={"Authorization": "Bearer t0k"})
        image_after = await client.post(
            f"/models/{model_name}/predict-image", content=astronaut_jpeg
        )
        meta_after = await client.get(f"/v2/models/{model_name}")
        listed_after = (await client.get("/models")).json()

    assert meta.status_code == 200
    assert meta.json()["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 1, 48, 48]}
    ]
    assert meta.json()["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 7]}]
    assert meta.json()["parameters"]["chimp_metadata"] is False
    assert "labels" not in meta.json()["parameters"]
    assert infer.status_code == 200
    (expected,) = ort.InferenceSession(str(path)).run(["logits"], {"input": batch})
    assert np.allclose(infer.json()["outputs"][0]["data"], np.ravel(expected), atol=1e-5)

    for refused in (image, legacy):
        assert refused.status_code == 409
        assert refused.json()["code"] == "missing_metadata"
        error = refused.json()["error"]
        assert "no CHIMP metadata" in error
        assert "labels" in error
        assert f"PUT /models/{model_name}/versions/{version}/metadata" in error
    (served,) = [m for m in listed["models"] if m["name"] == model_name]
    assert [(v["version"], v["chimp_metadata"], v["labels"]) for v in served["loaded"]] == [
        (version, False, None)
    ]

    assert image_after.status_code == 200
    assert len(image_after.json()["faces"]) == 1
    assert meta_after.json()["parameters"]["labels"] == EMOTIONS
    (served,) = [m for m in listed_after["models"] if m["name"] == model_name]
    assert [v["chimp_metadata"] for v in served["loaded"]] == [True]
