"""``chimp-serving``: one process by default, uvicorn worker processes on request."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from chimp.serving import cli
from chimp.serving.config import ServingSettings


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, dict[str, Any]]]:
    calls: list[tuple[object, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    # The real one exempts every live object from GC: right for a server, not for pytest.
    monkeypatch.setattr(cli, "freeze_startup_objects", lambda: None)
    monkeypatch.setattr(cli, "setup_logging", lambda *a, **kw: None)  # leave pytest's logging
    # main() passes command-line values to workers through the environment; restore it after.
    for name in ("HOST", "PORT", "WORKERS"):
        monkeypatch.delenv(f"CHIMP_SERVING__{name}", raising=False)
    monkeypatch.delenv("CHIMP_LOG_LEVEL", raising=False)
    monkeypatch.setenv("CHIMP_DATA_DIR", "/nonexistent/chimp-cli-test")
    return calls


def test_one_process_by_default(uvicorn_calls: list[tuple[object, dict[str, Any]]]) -> None:
    assert cli.main(["--port", "6001"]) == 0
    ((app, options),) = uvicorn_calls
    assert isinstance(app, FastAPI)
    assert options["port"] == 6001
    assert options["workers"] is None
    assert options["access_log"] is False


def test_workers_start_the_factory_in_each_process(
    uvicorn_calls: list[tuple[object, dict[str, Any]]],
) -> None:
    assert cli.main(["serve", "--workers", "2", "--port", "6002", "--log-level", "WARNING"]) == 0
    ((app, options),) = uvicorn_calls
    assert app == "chimp.serving.cli:worker_app"
    assert options["factory"] is True
    assert options["workers"] == 2
    assert options["port"] == 6002
    # A worker process builds its app from the same settings, command-line values included.
    assert isinstance(cli.worker_app(), FastAPI)
    assert ServingSettings().serving.port == 6002
