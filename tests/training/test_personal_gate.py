"""The personal gate: better on the user's own held-out frames, within the forgetting bound.

Models here are template matchers written as ONNX (logit = image · template of the label), so
which one is better is known by construction; scoring runs through the real ONNX Runtime path
against a real ``mlflow server``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from chimp.shared.registry import ModelRegistry, user_alias
from chimp.shared.schemas.continual import PromotionPolicy
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.training.evaluation import EvaluationItem, EvaluationSet
from chimp.training.history import read_history
from chimp.training.personal_gate import decide, personal_gate
from chimp.training.records import ModelRecords
from chimp.training.splits import image_hash
from tests.training.synthetic import EMOTIONS, pattern

SPEC = InputSpec(height=48, width=48, channels=1, color="gray")
RNG_SEED = 7


def template_onnx(path: Path, order: list[int]) -> Path:
    """Logit of label ``i`` = image · (pattern ``order[i]`` - its mean): a pattern classifier."""
    rng = np.random.default_rng(0)
    templates = []
    for index in order:
        mean = np.mean([pattern(index, 48, rng) for _ in range(8)], axis=0) / 255.0
        templates.append((mean - mean.mean()).reshape(-1))
    weights = np.stack(templates, axis=1).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
        ],
        "templates",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(order)])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


IDENTITY = list(range(len(EMOTIONS)))
SHIFTED = [(i + 1) % len(EMOTIONS) for i in IDENTITY]  # this user's faces look "one over"


def register(registry: ModelRegistry, name: str, tmp: Path, order: list[int], tag: str) -> str:
    meta = ModelMetadata(task="face-classification", labels=EMOTIONS, input=SPEC)
    path = template_onnx(tmp / f"{tag}.onnx", order)
    return registry.log_model_version(name, path, meta, tags={"chimp.holdout": "hash:0.5"}).version


def user_frames(root: Path, order: list[int], per_label: int = 6) -> Path:
    """An assembled personal folder: the user's label ``i`` looks like pattern ``order[i]``."""
    rng = np.random.default_rng(RNG_SEED)
    for label_index, label in enumerate(EMOTIONS):
        folder = root / "train" / label
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_label):
            image = pattern(order[label_index], 48, rng)
            cv2.imwrite(str(folder / f"u-calib-x-1-{n}.png"), image)
        cv2.imwrite(str(folder / "replay-0.png"), pattern(label_index, 48, rng))
    return root


def shared_data() -> EvaluationSet:
    rng = np.random.default_rng(11)
    items = []
    for index, label in enumerate(EMOTIONS):
        for _ in range(4):
            image = cv2.cvtColor(pattern(index, 48, rng), cv2.COLOR_GRAY2BGR)
            items.append(EvaluationItem(image_hash(image), label, image))
    return EvaluationSet("shared-eval", items)


@pytest.fixture
def records(mlflow_uri: str) -> ModelRecords:
    return ModelRecords(mlflow_uri, experiment=f"chimp-test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def user() -> str:
    return f"ann{uuid.uuid4().hex[:8]}"


def test_decide_rules() -> None:
    assert decide(None, None, 0.05)[0] == "rejected"
    assert decide((0.5, 0.8), None, 0.05) == (
        "rejected",
        "user_accuracy 0.500 vs 0.800 on the user's held-out frames: worse",
    )
    assert decide((0.8, 0.8), None, 0.05)[0] == "rejected"  # equality does not replace
    assert decide((0.8, 0.8), (0.9, 0.8), 0.05)[0] == "promoted"  # tie broken by shared
    assert decide((0.9, 0.5), (0.70, 0.80), 0.05)[0] == "rejected"  # forgets 0.10 > 0.05
    verdict, reason = decide((0.9, 0.5), (0.78, 0.80), 0.05)
    assert verdict == "promoted"
    assert "0.400 better" in reason


def test_a_worse_personal_model_does_not_replace_the_current_one(
    registry: ModelRegistry, records: ModelRecords, model_name: str, user: str, tmp_path: Path
) -> None:
    good = register(registry, model_name, tmp_path, SHIFTED, "good")
    registry.set_alias(model_name, user_alias(user), good)
    worse = register(registry, model_name, tmp_path, IDENTITY, "worse")
    root = user_frames(tmp_path / "personal", SHIFTED)

    decision = personal_gate(
        registry, records, model_name, worse, user,
        personal_root=root, shared_dataset=None, forgetting_bound=0.05,
        policy=PromotionPolicy(), task_id="t1",
    )  # fmt: skip

    assert decision.verdict == "rejected"
    assert decision.baseline_version == good
    assert "worse" in decision.reason
    metric = decision.metrics["user_accuracy"]
    assert metric.baseline == 1.0
    assert metric.candidate < 0.5
    assert registry.aliases(model_name)[user_alias(user)] == good  # the user keeps theirs
    assert registry.get_version(model_name, worse).tags["chimp.decision.verdict"] == "rejected"


def test_a_better_personal_model_replaces_it_and_the_move_is_in_the_history(
    registry: ModelRegistry, records: ModelRecords, model_name: str, user: str, tmp_path: Path
) -> None:
    old = register(registry, model_name, tmp_path, IDENTITY, "old")
    registry.set_alias(model_name, user_alias(user), old)
    better = register(registry, model_name, tmp_path, SHIFTED, "better")
    root = user_frames(tmp_path / "personal", SHIFTED)

    decision = personal_gate(
        registry, records, model_name, better, user,
        personal_root=root, shared_dataset=None, forgetting_bound=1.0,
        policy=PromotionPolicy(), task_id="t2",
    )  # fmt: skip

    assert decision.verdict == "promoted", decision.reason
    assert registry.aliases(model_name)[user_alias(user)] == better
    [move] = [e for e in read_history(records, model_name) if e.alias == user_alias(user)]
    assert (move.from_version, move.to_version, move.actor) == (old, better, "personal-gate")
    assert move.reason.startswith("promoted: user_accuracy 1.000 vs")


def test_a_personal_model_that_forgets_the_shared_task_is_refused(
    registry: ModelRegistry, records: ModelRecords, model_name: str, user: str, tmp_path: Path
) -> None:
    old = register(registry, model_name, tmp_path, IDENTITY, "old")
    registry.set_alias(model_name, user_alias(user), old)
    forgetful = register(registry, model_name, tmp_path, SHIFTED, "forgetful")
    root = user_frames(tmp_path / "personal", SHIFTED)

    decision = personal_gate(
        registry, records, model_name, forgetful, user,
        personal_root=root, shared_dataset=shared_data(), forgetting_bound=0.05,
        policy=PromotionPolicy(), task_id="t3",
    )  # fmt: skip

    assert decision.verdict == "rejected"
    assert "forgets" in decision.reason
    assert decision.metrics["user_accuracy"].candidate == 1.0  # better for the user ...
    assert decision.metrics["shared_accuracy"].baseline == 1.0  # ... but forgot everyone else
    assert registry.aliases(model_name)[user_alias(user)] == old
