"""One user's versions in the registry: found by their tag, and removed with their run and files."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from chimp.shared.errors import NotFoundError
from chimp.shared.registry import PRODUCTION, ModelRegistry, user_alias
from chimp.shared.registry.layout import TAG_USER
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from tests.fixtures.onnx_models import make_tiny_onnx

LABELS = ["happy", "sad"]
SPEC = InputSpec(height=8, width=8, channels=1)


@pytest.fixture
def ann() -> str:
    """A user id of this test's own (the MLflow server is shared by the session)."""
    return f"ann-{uuid.uuid4().hex[:8]}"


def _register(registry: ModelRegistry, name: str, tmp: Path, user: str | None, seed: int) -> str:
    path = make_tiny_onnx(tmp / f"m{seed}.onnx", LABELS, SPEC, seed=seed)
    metadata = ModelMetadata(task="face-classification", labels=LABELS, input=SPEC)
    tags = {TAG_USER: user} if user else {}
    return registry.log_model_version(name, path, metadata, tags=tags).version


def test_user_versions_lists_only_that_users_versions_across_models(
    registry: ModelRegistry, model_name: str, tmp_path: Path, ann: str
) -> None:
    shared = _register(registry, model_name, tmp_path, None, 0)
    mine = _register(registry, model_name, tmp_path, ann, 1)
    _register(registry, model_name, tmp_path, f"bob-{ann}", 2)
    other = _register(registry, f"{model_name}-b", tmp_path, ann, 3)
    registry.set_alias(model_name, user_alias(ann), mine)

    found = registry.user_versions(ann)
    assert [(v.name, v.version) for v in found] == [(model_name, mine), (f"{model_name}-b", other)]
    assert found[0].aliases == [user_alias(ann)]
    assert shared not in [v.version for v in found if v.name == model_name]


def test_delete_version_removes_alias_version_run_and_files(
    registry: ModelRegistry, model_name: str, tmp_path: Path, mlflow_uri: str, ann: str
) -> None:
    production = _register(registry, model_name, tmp_path, None, 0)
    registry.set_alias(model_name, PRODUCTION, production)
    version = _register(registry, model_name, tmp_path, ann, 1)
    registry.set_alias(model_name, user_alias(ann), version)
    run_id = registry.get_version(model_name, version).run_id
    assert run_id is not None

    registry.delete_version(model_name, version)

    assert registry.aliases(model_name) == {PRODUCTION: production}
    with pytest.raises(NotFoundError):
        registry.get_version(model_name, version)
    assert registry.user_versions(ann) == []
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.list_artifacts(run_id) == []
