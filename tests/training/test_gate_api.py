"""The gate's Python API (what importers and pretrained-model registration call), real MLflow."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np

from chimp.shared.registry import ModelRegistry
from chimp.shared.schemas.continual import PromotionPolicy
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.training.evaluation import CandidateData, EvaluationItem, EvaluationSet
from chimp.training.gate import register_and_gate
from chimp.training.history import read_history
from chimp.training.records import ModelRecords
from chimp.training.splits import image_hash
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.training.conftest import SettingsFactory, api_client

LABELS = ["a", "b"]
SPEC = InputSpec(height=4, width=4)


def _metadata(plugin: str | None = None) -> ModelMetadata:
    return ModelMetadata(task="image-classification", labels=LABELS, input=SPEC, plugin=plugin)


def _held_out(count: int) -> CandidateData:
    rng = np.random.default_rng(5)
    items = []
    for n in range(count):
        image = cv2.cvtColor(rng.integers(0, 255, (4, 4), dtype=np.uint8), cv2.COLOR_GRAY2BGR)
        items.append(EvaluationItem(image_hash(image), LABELS[n % 2], image))
    return CandidateData(held_out=EvaluationSet("new data (held out)", items), trained=set())


def test_a_first_version_without_evaluation_data_is_promoted_and_says_why(
    registry: ModelRegistry, mlflow_uri: str, model_name: str, tmp_path: Path
) -> None:
    records = ModelRecords(mlflow_uri, experiment=registry.experiment)
    onnx = make_tiny_onnx(tmp_path / "pretrained.onnx", LABELS, SPEC, seed=1)
    info, decision = register_and_gate(registry, records, model_name, onnx, _metadata())
    assert decision.verdict == "first"
    assert "no evaluation data" in decision.reason
    assert info.aliases == ["production"]

    # A champion with no recorded data: the candidate's held-out split is what both see.
    onnx2 = make_tiny_onnx(tmp_path / "next.onnx", LABELS, SPEC, seed=2)
    policy = PromotionPolicy(min_value=0)
    _, second = register_and_gate(
        registry, records, model_name, onnx2, _metadata(), policy=policy, candidate=_held_out(40)
    )
    assert second.baseline_version == "1"
    assert second.evaluation is not None
    assert second.evaluation.name == "new data (held out)"
    assert second.evaluation.images == 40
    assert set(second.metrics["accuracy"].model_dump()) == {"metric", "candidate", "baseline"}
    moves = read_history(records, model_name)
    assert moves[0].kind == "gate"
    assert moves[0].to_version == "1"


async def test_versions_a_plugin_declares_not_comparable_are_never_promoted_by_the_gate(
    make_settings: SettingsFactory,
    redis_client: object,
    registry: ModelRegistry,
    mlflow_uri: str,
    model_name: str,
    tmp_path: Path,
) -> None:
    records = ModelRecords(mlflow_uri, experiment=registry.experiment)
    _, decision = register_and_gate(
        registry,
        records,
        model_name,
        make_tiny_onnx(tmp_path / "1.onnx", LABELS, SPEC, seed=1),
        _metadata(plugin="example"),
        comparable=False,
    )
    assert decision.verdict == "first"
    second, later = register_and_gate(
        registry,
        records,
        model_name,
        make_tiny_onnx(tmp_path / "2.onnx", LABELS, SPEC, seed=2),
        _metadata(plugin="example"),
        comparable=False,
    )
    assert later.verdict == "rejected"
    assert "not comparable" in later.reason
    assert second.aliases == ["staging"]

    settings = make_settings(mlflow_uri=mlflow_uri)
    settings.mlflow.experiment = registry.experiment
    async with api_client(settings) as client:
        policy = (await client.get(f"/models/{model_name}/policy")).json()
    assert policy["gated"] is False
    assert "not compared" in policy["summary"]
    assert isinstance(client, httpx.AsyncClient)
