"""The compose ``.env``: one template renders both ``.env.example`` and ``chimp init``'s file.

Secrets are blank in the example (compose refuses to start with a blank one) and random in the
file ``chimp init`` writes, so no credential is ever typed by hand or committed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _password() -> str:
    return secrets.token_urlsafe(24)


def _access_key() -> str:
    return f"chimp-{secrets.token_hex(8)}"


def _admin_user() -> str:
    return f"admin-{secrets.token_hex(6)}"


@dataclass(frozen=True)
class EnvVar:
    name: str
    comment: str
    value: str = ""
    generate: Callable[[], str] | None = None


HEADER = """\
# Settings for `docker compose` (compose.yaml). Generate a filled-in .env with random secrets:
#     chimp init          (writes .env; --force to replace an existing one)
# Secrets are blank here on purpose: compose refuses to start until they are set.
# These names carry no CHIMP_ prefix, so `chimp up` (which reads .env too) ignores them.
"""

VARIABLES: tuple[EnvVar, ...] = (
    EnvVar(
        "COMPOSE_PROFILES", "Profile when none is given: default (CPU), gpu or services.", "default"
    ),
    EnvVar(
        "S3_ADMIN_USER",
        "SeaweedFS (S3) admin: its access key and web UI user; only s3-setup uses it.",
        generate=_admin_user,
    ),
    EnvVar(
        "S3_ADMIN_PASSWORD",
        "SeaweedFS admin secret key and web UI password (8+ characters).",
        generate=_password,
    ),
    EnvVar(
        "S3_BUCKET",
        "Bucket for datasets (prefix datasets/) and MLflow artifacts (mlflow/).",
        "chimp",
    ),
    EnvVar(
        "S3_ACCESS_KEY_ID",
        "Service credentials s3-setup creates, limited to the bucket.",
        generate=_access_key,
    ),
    EnvVar(
        "S3_SECRET_ACCESS_KEY",
        "Secret of the service credentials (8+ characters).",
        generate=_password,
    ),
    EnvVar("REDIS_PASSWORD", "Password of the compose Redis (requirepass).", generate=_password),
    EnvVar(
        "ADMIN_TOKEN",
        "Bearer token for admin/mutating endpoints (CHIMP_AUTH__TOKEN).",
        generate=_password,
    ),
    EnvVar(
        "PRETRAINED_MODEL",
        "true: a stack with no shared production model registers the pretrained FER2013 model "
        "the image carries (through the evaluation gate); false: start with no model.",
        "true",
    ),
    EnvVar(
        "PORT_FRONTEND",
        "Host ports, on PUBLISH_ADDRESS. PORT_SERVING is a range: one port per serving replica.",
        "5252",
    ),
    EnvVar("PORT_TRAINING", "", "5253"),
    EnvVar("PORT_SERVING", "", "5254-5263"),
    EnvVar("PORT_MLFLOW", "", "8999"),
    EnvVar("PORT_S3", "", "9000"),
    EnvVar("PORT_S3_UI", "", "9001"),
    EnvVar("PORT_REDIS", "", "6379"),
    EnvVar("PUBLISH_ADDRESS", "127.0.0.1: this machine only; 0.0.0.0: every interface.", "0.0.0.0"),
    EnvVar(
        "BUILD_BASE_IMAGE",
        "Image build, see docs/deployment.md. CA file and wheels folder: paths in build-extras/.",
        "python:3.11-slim-bookworm",
    ),
    EnvVar("BUILD_PIP_INDEX_URL", "", "https://pypi.org/simple"),
    EnvVar("BUILD_TORCH_INDEX_URL", "", "https://download.pytorch.org/whl/cpu"),
    EnvVar("BUILD_EXTRA_CA_CERT", "", ""),
    EnvVar("BUILD_LOCAL_WHEELS", "", ""),
)


def render(*, with_secrets: bool) -> str:
    """The ``.env`` text: blanks for secrets unless ``with_secrets``."""
    lines = [HEADER]
    for var in VARIABLES:
        value = var.value
        if var.generate is not None and with_secrets:
            value = var.generate()
        if var.comment:
            lines.append(f"\n# {var.comment}\n")
        lines.append(f"{var.name}={value}\n")
    return "".join(lines)


class EnvFileExistsError(Exception):
    pass


def write_env_file(path: Path, *, force: bool = False) -> None:
    """Write a ``.env`` with fresh secrets, readable by its owner only."""
    if path.exists() and not force:
        raise EnvFileExistsError(
            f"{path} already exists; keep it, or pass --force to replace it (the services' "
            "data was created with the old secrets)."
        )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render(with_secrets=True))
