"""The `chimp` command line: flags and settings reach `chimp up`, `chimp version` answers."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pytest

import chimp.stack.up
from chimp.cli import main
from chimp.stack.config import StackSettings


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("chimp ")


def test_up_flags_override_settings_and_env_fills_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[tuple[StackSettings, Collection[str]]] = []

    def fake_up(settings: StackSettings, env: dict[str, str], skip: Collection[str]) -> int:
        seen.append((settings, skip))
        return 0

    monkeypatch.chdir(tmp_path)  # no .env from the repo
    monkeypatch.setenv("CHIMP_SERVING__PORT", "6002")
    monkeypatch.setenv("CHIMP_STACK__MLFLOW_PORT", "6003")
    monkeypatch.setenv("CHIMP_TRAINING__PLUGIN_DIR", "/somewhere")  # the service's, not ours
    monkeypatch.setattr(chimp.stack.up, "up", fake_up)

    code = main(
        [
            "up",
            "--data-dir",
            str(tmp_path / "d"),
            "--training-port",
            "6001",
            "--redis-port",
            "6004",
            "--skip",
            "frontend, worker",
        ]
    )

    assert code == 0
    settings, skip = seen[0]
    assert settings.data_dir == tmp_path / "d"
    assert settings.training.port == 6001
    assert settings.serving.port == 6002
    assert settings.stack.mlflow_port == 6003
    assert settings.stack.redis_port == 6004
    assert settings.frontend.port == 5252
    assert set(skip) == {"frontend", "worker"}
