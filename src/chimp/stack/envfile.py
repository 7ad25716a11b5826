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
        "MINIO_ROOT_USER",
        "MinIO admin, used only by the one-shot minio-setup service.",
        generate=_admin_user,
    ),
    EnvVar("MINIO_ROOT_PASSWORD", "MinIO admin password (8+ characters).", generate=_password),
    EnvVar(
        "S3_BUCKET",
        "Bucket for datasets (prefix datasets/) and MLflow artifacts (mlflow/).",
        "chimp",
    ),
    EnvVar(
        "S3_ACCESS_KEY_ID",
        "Service credentials minio-setup creates, limited to the bucket.",
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
)


def render(*, with_secrets: bool) -> str:
    """The ``.env`` text: blanks for secrets unless ``with_secrets``."""
    lines = [HEADER]
    for var in VARIABLES:
        value = var.value
        if var.generate is not None and with_secrets:
            value = var.generate()
        lines.append(f"# {var.comment}\n{var.name}={value}\n")
    return "\n".join(lines)


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
