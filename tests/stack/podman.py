"""A Docker API for the compose CLI on hosts without Docker Engine: podman's API service.

Used by the compose stack test. What this host kind needs (see deploy/podman/containers.conf):
runc instead of crun and lowered default ulimits; no registry, so the base image comes from
debootstrap (deploy/docker/debian-base.sh) and is kept, with its root file system tarball, in a
cache folder outside the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "deploy" / "podman" / "containers.conf"
BASE_SCRIPT = REPO / "deploy" / "docker" / "debian-base.sh"
BASE_IMAGE = "localhost/chimp-base:bookworm"
CACHE_DIR = Path(os.environ.get("COMPOSE_TEST_CACHE", "/var/cache/chimp-compose-test"))
TOOLS = ("podman", "runc", "debootstrap")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, timeout: float = 300) -> str:
    result = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def ensure_base_image() -> str:
    """The Debian 12 + Python 3.11 base, imported from the cached tarball or debootstrapped."""
    exists = subprocess.run(
        ["podman", "image", "exists", BASE_IMAGE], env=podman_env(), check=False
    ).returncode
    if exists != 0:
        subprocess.run(
            [str(BASE_SCRIPT), BASE_IMAGE],
            env={**podman_env(), "CACHE_DIR": str(CACHE_DIR), "ENGINE": "podman"},
            check=True,
            capture_output=True,
            timeout=1200,
        )
    return BASE_IMAGE


@contextlib.contextmanager
def api_service(socket_dir: Path) -> Iterator[str]:
    """``podman system service`` on a socket of its own; yields its DOCKER_HOST, then stops it."""
    socket = socket_dir / "podman.sock"
    log = (socket_dir / "podman-service.log").open("w")
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        env=podman_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                output = (socket_dir / "podman-service.log").read_text()
                raise RuntimeError(f"podman system service did not start: {output}")
            time.sleep(0.2)
        yield f"unix://{socket}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def project_leftovers(project: str) -> dict[str, list[str]]:
    """Containers, pods, volumes and networks that still carry the compose project's label."""
    label = f"label=com.docker.compose.project={project}"
    found: dict[str, list[str]] = {}
    for kind, args in (
        ("containers", ["ps", "-a", "--filter", label, "--format", "{{.Names}}"]),
        ("pods", ["pod", "ps", "--filter", label, "--format", "{{.Name}}"]),
        ("volumes", ["volume", "ls", "--filter", label, "--format", "{{.Name}}"]),
        ("networks", ["network", "ls", "--filter", label, "--format", "{{.Name}}"]),
    ):
        names = [line for line in podman(*args, check=False).splitlines() if line.strip()]
        if names:
            found[kind] = names
    return found


def remove_project(project: str) -> None:
    """Last resort after a failed ``down``: remove whatever the project left, by its label."""
    left = project_leftovers(project)
    for name in left.get("containers", []):
        podman("rm", "-f", "-t", "2", name, check=False)
    for name in left.get("pods", []):
        podman("pod", "rm", "-f", name, check=False)
    for name in left.get("volumes", []):
        podman("volume", "rm", "-f", name, check=False)
    for name in left.get("networks", []):
        podman("network", "rm", "-f", name, check=False)


def image_sizes(*names: str) -> dict[str, int]:
    """Bytes of each local image (uncompressed, as ``podman images`` counts them)."""
    sizes: dict[str, int] = {}
    for name in names:
        found = json.loads(podman("image", "inspect", name, check=False) or "[]")
        if found:
            sizes[name] = int(found[0]["Size"])
    return sizes
