"""ONNX Runtime wrapper: provider choice, input checks, micro-batching."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import numpy as np
import pytest

from chimp.serving.config import BatchingConfig
from chimp.serving.inference import (
    ModelRunner,
    OnnxModel,
    SessionOptions,
    TensorShapeError,
    select_providers,
)
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.serving.conftest import EMOTIONS, FACE_SPEC


def test_provider_selection() -> None:
    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert select_providers("auto", [cpu]) == [cpu]
    assert select_providers("auto", [cuda, cpu]) == [cuda, cpu]
    assert select_providers("cpu", [cuda, cpu]) == [cpu]
    assert select_providers("cuda", [cuda, cpu]) == [cuda, cpu]
    with pytest.raises(RuntimeError, match="gpu"):
        select_providers("cuda", [cpu])


@pytest.fixture
def model(tmp_path: Path) -> OnnxModel:
    path = make_tiny_onnx(tmp_path / "m.onnx", EMOTIONS, FACE_SPEC)
    return OnnxModel(path, SessionOptions(providers=["CPUExecutionProvider"]))


def test_input_checks_name_the_problem(model: OnnxModel) -> None:
    model.check_input(np.zeros((3, 1, 48, 48), np.float32))
    with pytest.raises(TensorShapeError, match=r"expected \['N', 1, 48, 48\]"):
        model.check_input(np.zeros((1, 3, 48, 48), np.float32))
    with pytest.raises(TensorShapeError, match="float32"):
        model.check_input(np.zeros((1, 1, 48, 48), np.float64))
    with pytest.raises(TensorShapeError, match="empty"):
        model.check_input(np.zeros((0, 1, 48, 48), np.float32))


class CountingModel:
    """Wraps a model to record the batch size of every ORT call."""

    def __init__(self, model: OnnxModel) -> None:
        self.inner = model
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape[0])
        return self.inner.run(batch)


@pytest.mark.parametrize("enabled", [True, False])
async def test_concurrent_requests_get_their_own_answers(model: OnnxModel, enabled: bool) -> None:
    counting = CountingModel(model)
    runner = ModelRunner(
        counting,  # type: ignore[arg-type]
        anyio.CapacityLimiter(1),
        BatchingConfig(enabled=enabled, max_batch_size=8),
    )
    rng = np.random.default_rng(0)
    inputs = [rng.random((1 + i % 2, 1, 48, 48), dtype=np.float32) for i in range(20)]
    outputs = await asyncio.gather(*(runner.infer(x) for x in inputs))
    for x, out in zip(inputs, outputs, strict=True):
        assert np.allclose(out, model.run(x), atol=1e-5)
    assert sum(counting.calls) == sum(x.shape[0] for x in inputs)
    assert max(counting.calls) <= 8
    if enabled:
        assert len(counting.calls) < len(inputs)  # requests were merged
    else:
        assert len(counting.calls) == len(inputs)
