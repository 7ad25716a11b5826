"""The alias vocabulary, and the connector: a task's MLflow run and the versions it registers."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from chimp.shared.errors import BadRequestError
from chimp.shared.registry import ModelRegistry, RunStatus, check_chimp_alias
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.training.connector import RegistryConnector
from tests.fixtures.onnx_models import make_tiny_onnx

LABELS = ["a", "b"]
SPEC = InputSpec(height=4, width=4)


@pytest.mark.parametrize("alias", ["production", "staging", "user-ann_1"])
def test_known_aliases_pass(alias: str) -> None:
    check_chimp_alias(alias)


@pytest.mark.parametrize("alias", ["champion", "user-", "user-a b", "latest"])
def test_other_aliases_are_refused(alias: str) -> None:
    with pytest.raises(BadRequestError):
        check_chimp_alias(alias)


def _stage(connector: RegistryConnector, name: str, tmp: Path, seed: int) -> None:
    onnx = make_tiny_onnx(tmp / f"m{seed}.onnx", LABELS, SPEC, seed=seed)
    metadata = ModelMetadata(task="image-classification", labels=LABELS, input=SPEC)
    connector.store_model(
        name, onnx, metadata, metrics={"acc": 0.5}, metric_history={"loss": [2.0, 1.0]}
    )


def _connector(registry: ModelRegistry, tmp: Path, **kwargs: object) -> RegistryConnector:
    return RegistryConnector(
        registry_factory=lambda: registry,
        download_dir=tmp / "dl",
        **kwargs,  # type: ignore[arg-type]
    )


def test_commit_registers_versions_without_moving_aliases(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    first = _connector(registry, tmp_path)
    assert first.get_production_model(model_name) is None
    _stage(first, model_name, tmp_path, 1)
    assert model_name not in {m.name for m in registry.list_models()}  # staged, not registered
    (v1,) = first.commit()
    # Aliases are the evaluation gate's business, in the worker, after the task.
    assert v1.aliases == []
    assert v1.metrics["acc"] == 0.5
    assert v1.tags["chimp.task"] == "image-classification"
    assert registry.metric_history(model_name, v1.version, "loss") == [(0, 2.0), (1, 1.0)]

    registry.set_alias(model_name, "production", v1.version)
    production = first.get_production_model(model_name)
    assert production is not None
    assert production.version.version == v1.version
    assert production.onnx_path.read_bytes() == (tmp_path / "m1.onnx").read_bytes()


def test_a_plugin_that_never_commits_registers_nothing(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    connector = _connector(registry, tmp_path)
    _stage(connector, model_name, tmp_path, 1)
    assert model_name not in {m.name for m in registry.list_models()}


def test_a_task_run_streams_metrics_then_registers_from_the_same_run(
    registry: ModelRegistry, model_name: str, tmp_path: Path, mlflow_uri: str
) -> None:
    connector = _connector(registry, tmp_path, run_name="task", run_params={"arguments.epochs": 3})
    run_id = connector.start_run()
    for epoch, loss in enumerate([2.0, 1.5, 1.0]):
        connector.log_metrics({"train_loss": loss, "val_accuracy": 0.3 * (epoch + 1)}, step=epoch)
    client = MlflowClient(mlflow_uri)
    # Visible in MLflow while the task still runs, before anything is registered.
    assert client.get_run(run_id).info.status == "RUNNING"
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [0, 1, 2]
    onnx = make_tiny_onnx(tmp_path / "m.onnx", LABELS, SPEC, seed=1)
    connector.store_model(
        model_name,
        onnx,
        ModelMetadata(task="image-classification", labels=LABELS, input=SPEC),
        metrics={"test_accuracy": 0.8, "val_accuracy": 0.95},
        metric_history={"train_loss": [2.0, 1.5, 1.0]},  # already streamed: not logged twice
    )
    (version,) = connector.commit()
    connector.end_run("FINISHED")

    assert version.run_id == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["arguments.epochs"] == "3"
    assert len(client.get_metric_history(run_id, "train_loss")) == 3  # one point per epoch
    assert registry.metric_history(model_name, version.version, "train_loss") == [
        (0, 2.0), (1, 1.5), (2, 1.0)
    ]  # fmt: skip
    # A final value of a streamed metric lands on its last step and is the run's value.
    assert version.metrics["val_accuracy"] == 0.95
    assert version.metrics["test_accuracy"] == 0.8


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_an_aborted_task_run_ends_marked_and_registers_nothing(
    registry: ModelRegistry, model_name: str, tmp_path: Path, mlflow_uri: str, status: RunStatus
) -> None:
    connector = _connector(registry, tmp_path)
    run_id = connector.start_run()
    connector.log_metrics({"train_loss": 1.0}, step=0)
    _stage(connector, model_name, tmp_path, 1)
    connector.abort(status)
    assert MlflowClient(mlflow_uri).get_run(run_id).info.status == status
    assert model_name not in {m.name for m in registry.list_models()}
