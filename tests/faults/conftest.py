"""Parts that a fault test may break: its own Redis (restartable), a worker in a process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chimp.training.config import TrainingSettings
from tests.fixtures.ports import free_port, wait_for_port
from tests.serving.conftest import astronaut_jpeg, mlflow_proxy
from tests.training.conftest import make_settings, settings

# Fixtures of the training and serving tests, shared with the fault tests.
__all__ = ["astronaut_jpeg", "make_settings", "mlflow_proxy", "settings"]


class OwnRedis:
    """A redis-server only this test uses, with an append-only file so a restart keeps data."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is needed to restart Redis under a test")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def settings_env(settings: TrainingSettings) -> dict[str, str]:
    """The environment that gives a ``chimp-train`` process exactly these settings."""
    cfg = settings.training
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIMP_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(sys.path),
            "CHIMP_REDIS_URL": settings.redis_url,
            "CHIMP_DATA_DIR": str(settings.data_dir),
            "CHIMP_DATASTORE__LOCAL_PATH": str(settings.datastore_path()),
            "CHIMP_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
            "CHIMP_MLFLOW__EXPERIMENT": settings.mlflow.experiment,
            "CHIMP_TRAINING__QUEUE_NAME": cfg.queue_name,
            "CHIMP_TRAINING__KEY_PREFIX": cfg.key_prefix,
            "CHIMP_TRAINING__TMP_DIR": str(cfg.tmp_dir),
            "CHIMP_TRAINING__LEASE_S": str(cfg.lease_s),
            "CHIMP_TRAINING__POLL_INTERVAL_S": str(cfg.poll_interval_s),
        }
    )
    if cfg.plugin_dir is not None:
        env["CHIMP_TRAINING__PLUGIN_DIR"] = str(cfg.plugin_dir)
    return env


@contextlib.contextmanager
def worker_process(settings: TrainingSettings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``chimp-train worker`` in its own process, stopped (or already killed) on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chimp.training.cli", "worker"],
            env=settings_env(settings),
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# A plugin that records its process id, then trains "forever" (until killed or cancelled),
# and would register a model only at the very end.
SLOW_PLUGIN = """
import os
import time
from pathlib import Path

from chimp.shared.schemas.plugins import PluginArgument, PluginInfo
from chimp.training.plugins.base import BasePlugin


class Slow(BasePlugin):
    info = PluginInfo(
        name="slow",
        version="0.1",
        arguments=[
            PluginArgument(name="pid_file", type="str"),
            PluginArgument(name="seconds", type="float", optional=True, default=600.0),
        ],
    )

    def run(self, context):
        Path(context.arguments["pid_file"]).write_text(str(os.getpid()))
        (context.tmp_dir / "half-trained.bin").write_bytes(b"weights" * 1000)
        deadline = time.monotonic() + context.arguments["seconds"]
        while time.monotonic() < deadline:
            context.report_progress(0.5, "training")
            context.check_cancelled()
            time.sleep(0.1)
        return {"trained": True}
"""


@pytest.fixture
def slow_plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "slow.py").write_text(SLOW_PLUGIN)
    return folder
