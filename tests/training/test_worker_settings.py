"""``arq chimp.training.worker.WorkerSettings`` starts the same worker as ``chimp-train worker``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from arq.connections import RedisSettings
from arq.worker import get_kwargs

from chimp.training.config import TrainingSettings
from chimp.training.worker import WorkerSettings, worker_options


def arq_cli_options() -> dict[str, Any]:
    """Exactly what arq's CLI does with ``WorkerSettings`` (arq mis-annotates the values)."""
    return dict(get_kwargs(WorkerSettings))


def test_arq_cli_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env in the way
    monkeypatch.setenv("CHIMP_REDIS_URL", "redis://10.1.2.3:6390/4")
    monkeypatch.setenv("CHIMP_TRAINING__TASK_TIMEOUT_S", "7200")
    monkeypatch.setenv("CHIMP_TRAINING__QUEUE_NAME", "chimp-test:queue")
    options = arq_cli_options()
    redis: RedisSettings = options["redis_settings"]
    assert (redis.host, redis.port, redis.database) == ("10.1.2.3", 6390, 4)
    assert options["queue_name"] == "chimp-test:queue"
    # arq's default of 300 s would kill any longer training: the limit is the task's own.
    assert options["job_timeout"] > 7200
    assert all(f.timeout_s is not None and f.timeout_s > 7200 for f in options["functions"])


def test_arq_cli_and_chimp_train_worker_build_the_same_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHIMP_TRAINING__MAX_JOBS", "3")
    from_cli = arq_cli_options()
    from_settings = worker_options(TrainingSettings())
    assert from_cli.keys() == from_settings.keys()
    for key in ("queue_name", "max_jobs", "job_timeout", "keep_result", "poll_delay"):
        assert from_cli[key] == from_settings[key], key
    assert from_cli["max_jobs"] == 3
