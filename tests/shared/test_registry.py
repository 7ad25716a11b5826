"""The MLflow registry adapter against a real ``mlflow server``."""

from __future__ import annotations

from pathlib import Path

import anyio
import numpy as np
import onnx
import pytest
from mlflow import MlflowClient

from chimp.shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from chimp.shared.registry import (
    PRODUCTION,
    STAGING,
    AsyncModelRegistry,
    ModelRegistry,
    user_alias,
)
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.fixtures.ports import free_port

LABELS = ["angry", "happy", "neutral"]
SPEC = InputSpec(height=8, width=8, channels=1)


def _metadata(dataset: str = "fer-mini") -> ModelMetadata:
    return ModelMetadata(
        task="face-classification", labels=LABELS, input=SPEC, dataset=dataset, plugin="tiny"
    )


def _register(
    registry: ModelRegistry, name: str, tmp_path: Path, seed: int = 0, accuracy: float = 0.5
) -> str:
    onnx_path = make_tiny_onnx(tmp_path / f"m{seed}.onnx", LABELS, SPEC, seed=seed)
    info = registry.log_model_version(
        name, onnx_path, _metadata(), metrics={"val_accuracy": accuracy}
    )
    return info.version


def _curve(history: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [step for step, _ in history], [value for _, value in history]


# -- user aliases (no server needed) -------------------------------------------------------


def test_user_alias_is_prefixed_and_trimmed() -> None:
    assert user_alias(" alice_01 ") == "user-alice_01"


@pytest.mark.parametrize("bad", ["", "a b", "al/ice", "ali.ce", "x" * 65, "élodie"])
def test_user_alias_rejects_ids_mlflow_cannot_store(bad: str) -> None:
    with pytest.raises(BadRequestError, match="invalid user id"):
        user_alias(bad)


# -- logging and reading back --------------------------------------------------------------


def test_logged_version_reads_back_with_metadata_metrics_history_and_files(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    onnx_path = make_tiny_onnx(tmp_path / "net.onnx", LABELS, SPEC, seed=1)
    plot = tmp_path / "confusion_matrix.png"
    plot.write_bytes(b"\x89PNG fake image")

    info = registry.log_model_version(
        model_name,
        onnx_path,
        _metadata(),
        params={"epochs": 3, "lr": 0.01},
        metrics={"val_accuracy": 0.75, "test_accuracy": 0.7},
        metric_history={"val_accuracy": [0.5, 0.6, 0.7], "train_loss": [1.0, 0.8, 0.6]},
        artifacts=[plot],
        tags={"trigger": "test"},
    )

    assert info.version == "1"
    assert info.metadata == _metadata()
    assert info.metrics["test_accuracy"] == pytest.approx(0.7)
    # The summary value wins over the curve's last point.
    assert info.metrics["val_accuracy"] == pytest.approx(0.75)
    assert info.tags["chimp.task"] == "face-classification"
    assert info.tags["chimp.dataset"] == "fer-mini"
    assert info.tags["trigger"] == "test"

    again = registry.get_version(model_name, "1")
    assert again.metadata == _metadata()
    assert again.run_id == info.run_id
    assert again.created_at is not None

    steps, values = _curve(registry.metric_history(model_name, "1", "train_loss"))
    assert steps == [0, 1, 2]
    assert values == pytest.approx([1.0, 0.8, 0.6])
    assert _curve(registry.metric_history(model_name, "1", "val_accuracy"))[0] == [0, 1, 2]
    assert registry.metric_history(model_name, "1", "never-logged") == []

    files = {f.path for f in registry.list_version_artifacts(model_name, "1")}
    assert files == {"confusion_matrix.png", "model/model.onnx", "model/chimp-model.json"}
    got = registry.download_version_artifact(
        model_name, "1", "confusion_matrix.png", tmp_path / "dl"
    )
    assert got.read_bytes() == plot.read_bytes()
    stored = registry.download_version_artifact(
        model_name, "1", "model/chimp-model.json", tmp_path / "dl"
    )
    assert ModelMetadata.model_validate_json(stored.read_text()) == _metadata()


def test_progressive_run_then_register(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    with registry.run("training", params={"epochs": 2}, tags={"plugin": "tiny"}) as run_id:
        for epoch, loss in enumerate([0.9, 0.4]):
            registry.log_metrics(run_id, {"train_loss": loss}, step=epoch)
        onnx_path = make_tiny_onnx(tmp_path / "net.onnx", LABELS, SPEC)
        info = registry.log_model_version(
            model_name, onnx_path, _metadata(), run_id=run_id, metrics={"val_accuracy": 0.9}
        )

    assert info.run_id == run_id
    assert info.metrics == {"train_loss": pytest.approx(0.4), "val_accuracy": pytest.approx(0.9)}
    steps, values = _curve(registry.metric_history(model_name, info.version, "train_loss"))
    assert steps == [0, 1]
    assert values == pytest.approx([0.9, 0.4])


def test_a_deleted_experiment_is_restored_for_new_runs(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    _register(registry, model_name, tmp_path, seed=1)
    client = MlflowClient(registry.tracking_uri)
    experiment = client.get_experiment_by_name(registry.experiment)
    assert experiment is not None
    client.delete_experiment(experiment.experiment_id)
    fresh = ModelRegistry(registry.tracking_uri, experiment=registry.experiment)

    assert _register(fresh, model_name, tmp_path, seed=2) == "2"


def test_download_onnx_gives_a_valid_model_of_that_version(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    _register(registry, model_name, tmp_path, seed=1)
    _register(registry, model_name, tmp_path, seed=2)

    first = registry.download_onnx(model_name, "1", tmp_path / "v1")
    second = registry.download_onnx(model_name, "2", tmp_path / "v2")

    for path in (first, second):
        onnx.checker.check_model(onnx.load(str(path)))
    weights = [
        onnx.numpy_helper.to_array(onnx.load(str(p)).graph.initializer[0]) for p in (first, second)
    ]
    assert not np.allclose(weights[0], weights[1])


def test_list_versions_newest_first_with_aliases_and_list_models(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    for seed, accuracy in [(1, 0.5), (2, 0.6), (3, 0.7)]:
        _register(registry, model_name, tmp_path, seed=seed, accuracy=accuracy)
    registry.set_alias(model_name, PRODUCTION, "2")

    versions = registry.list_versions(model_name)

    assert [v.version for v in versions] == ["3", "2", "1"]
    assert [v.aliases for v in versions] == [[], [PRODUCTION], []]
    assert [v.metrics["val_accuracy"] for v in versions] == pytest.approx([0.7, 0.6, 0.5])
    listed = {m.name: m for m in registry.list_models()}
    assert listed[model_name].aliases == {PRODUCTION: "2"}
    assert listed[model_name].latest_version == "3"


# -- aliases -------------------------------------------------------------------------------


def test_aliases_set_move_resolve_delete(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    _register(registry, model_name, tmp_path, seed=1)
    _register(registry, model_name, tmp_path, seed=2)
    me = user_alias("alice")

    registry.set_alias(model_name, PRODUCTION, "1")
    registry.set_alias(model_name, STAGING, "2")
    registry.set_alias(model_name, me, "2")
    assert registry.aliases(model_name) == {PRODUCTION: "1", STAGING: "2", me: "2"}
    assert registry.resolve(model_name).version == "1"  # production by default
    assert registry.resolve(model_name, alias=me).aliases == sorted([STAGING, me])

    registry.set_alias(model_name, PRODUCTION, "2")  # promotion moves the alias
    assert registry.resolve(model_name).version == "2"
    assert registry.resolve(model_name, version="1").aliases == []

    registry.delete_alias(model_name, STAGING)
    assert STAGING not in registry.aliases(model_name)
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.resolve(model_name, alias=STAGING)


def test_unknown_model_version_and_alias_are_not_found(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match=f"model '{model_name}' is not registered"):
        registry.resolve(model_name)
    with pytest.raises(NotFoundError, match="is not registered"):
        registry.list_versions(model_name)

    _register(registry, model_name, tmp_path)
    with pytest.raises(NotFoundError, match="has no alias 'production'"):
        registry.resolve(model_name)
    with pytest.raises(NotFoundError, match="has no version 7"):
        registry.get_version(model_name, "7")
    with pytest.raises(NotFoundError, match="has no version 7"):
        registry.set_alias(model_name, PRODUCTION, "7")
    with pytest.raises(NotFoundError, match="has no version 7"):
        registry.download_onnx(model_name, "7", tmp_path)
    with pytest.raises(NotFoundError, match="has no alias"):
        registry.delete_alias(model_name, STAGING)
    with pytest.raises(NotFoundError, match="has no artifact"):
        registry.download_version_artifact(model_name, "1", "nope.png", tmp_path)


@pytest.mark.parametrize(
    ("alias", "version"), [("latest", "1"), ("v2", "1"), ("pro duction", "1"), ("prod", "one")]
)
def test_bad_alias_or_version_is_a_bad_request(
    registry: ModelRegistry, model_name: str, alias: str, version: str
) -> None:
    with pytest.raises(BadRequestError):
        registry.set_alias(model_name, alias, version)


def test_artifact_paths_cannot_escape_the_run(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(BadRequestError, match="invalid artifact path"):
        registry.download_version_artifact("any-model", "1", "../../etc/passwd", tmp_path)


def test_missing_onnx_file_is_a_bad_request_and_registers_nothing(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    with pytest.raises(BadRequestError, match="ONNX file not found"):
        registry.log_model_version(model_name, tmp_path / "missing.onnx", _metadata())
    with pytest.raises(NotFoundError):
        registry.aliases(model_name)


@pytest.mark.parametrize(
    ("labels", "spec", "problem"),
    [
        (["a", "b"], SPEC, "has 3 values per sample but the metadata lists 2 labels"),
        (LABELS, SPEC.model_copy(update={"width": 32}), r"\[N, 1, 8, 8\] .* \[N, 1, 8, 32\]"),
        (LABELS, SPEC.model_copy(update={"channels": 3}), r"input spec says \[N, 3, 8, 8\]"),
        (LABELS, SPEC.model_copy(update={"input_name": "pixels"}), "no input 'pixels'"),
        (LABELS, SPEC.model_copy(update={"output_name": "probs"}), "no output 'probs'"),
    ],
)
def test_onnx_that_does_not_match_its_metadata_is_refused(
    registry: ModelRegistry,
    model_name: str,
    tmp_path: Path,
    labels: list[str],
    spec: InputSpec,
    problem: str,
) -> None:
    onnx_path = make_tiny_onnx(tmp_path / "net.onnx", LABELS, SPEC)
    metadata = ModelMetadata(task="face-classification", labels=labels, input=spec)

    with pytest.raises(InvalidInputError, match=problem):
        registry.log_model_version(model_name, onnx_path, metadata)
    with pytest.raises(NotFoundError):
        registry.aliases(model_name)


def test_corrupt_onnx_is_refused(registry: ModelRegistry, model_name: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not protobuf \xff\xfe")

    with pytest.raises(InvalidInputError, match="not a readable ONNX model"):
        registry.log_model_version(model_name, broken, _metadata())


# -- async and health ----------------------------------------------------------------------


async def test_async_registry_works_from_an_event_loop(
    registry: ModelRegistry, model_name: str, tmp_path: Path
) -> None:
    areg = AsyncModelRegistry(registry, anyio.CapacityLimiter(2))
    await areg.check()
    onnx_path = make_tiny_onnx(tmp_path / "net.onnx", LABELS, SPEC)
    run_id = await areg.start_run("async", params={"epochs": 1})
    await areg.log_metrics(run_id, {"train_loss": 0.3}, step=0)
    info = await areg.log_model_version(model_name, onnx_path, _metadata(), run_id=run_id)
    await areg.end_run(run_id)
    await areg.set_alias(model_name, PRODUCTION, info.version)

    resolved = await areg.resolve(model_name)

    assert resolved.version == info.version
    assert resolved.metadata is not None
    assert resolved.metadata.labels == LABELS
    path = await areg.download_onnx(model_name, info.version, tmp_path / "dl")
    onnx.checker.check_model(onnx.load(str(path)))


def test_check_passes_against_a_live_server(registry: ModelRegistry) -> None:
    registry.check()


def test_mlflow_down_is_dependency_unavailable_quickly() -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = ModelRegistry(uri)

    with pytest.raises(DependencyUnavailableError, match=f"MLflow at {uri}") as err:
        down.check()
    assert err.value.status_code == 503

    # Ordinary calls give up after a few quick retries (seconds, not minutes of backoff).
    with pytest.raises(DependencyUnavailableError, match="unreachable"):
        down.resolve("any-model")
