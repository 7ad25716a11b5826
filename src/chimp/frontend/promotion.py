"""Rolling production back, expressed through the training service's alias endpoint.

The training service owns promotion (it moves aliases in the registry); the web app only decides
*which* version a rollback means: the newest shared version older than the current production
one. Per-user calibrated versions are never candidates, they were trained on one person's face.
"""

from __future__ import annotations

from typing import Any

from chimp.frontend.clients import Backend, upstream_path
from chimp.frontend.schemas import RollbackResult
from chimp.shared.errors import ConflictError

PRODUCTION = "production"
USER_ALIAS_PREFIX = "user-"


def _is_personal(version: dict[str, Any]) -> bool:
    aliases = version.get("aliases") or []
    tags = version.get("tags") or {}
    return any(str(a).startswith(USER_ALIAS_PREFIX) for a in aliases) or bool(
        tags.get("chimp.user_id") or tags.get("user_id")
    )


def _number(version: dict[str, Any]) -> int:
    try:
        return int(version["version"])
    except (KeyError, TypeError, ValueError):
        return -1


def rollback_target(versions: list[dict[str, Any]]) -> tuple[str, str]:
    """(current production version, version to roll back to)."""
    current = next((v for v in versions if PRODUCTION in (v.get("aliases") or [])), None)
    if current is None:
        raise ConflictError("no version is in production, there is nothing to roll back")
    older = [v for v in versions if 0 <= _number(v) < _number(current) and not _is_personal(v)]
    if not older:
        raise ConflictError(
            f"version {current['version']} is the oldest shared version; nothing to roll back to"
        )
    target = max(older, key=_number)
    return str(current["version"]), str(target["version"])


async def rollback_production(training: Backend, name: str) -> RollbackResult:
    versions = await training.json("GET", upstream_path("models", name, "versions"))
    if isinstance(versions, dict):  # tolerate an envelope like {"versions": [...]}
        versions = versions.get("versions", [])
    current, target = rollback_target(list(versions))
    await training.json(
        "POST", upstream_path("models", name, "aliases", PRODUCTION), json={"version": target}
    )
    return RollbackResult(alias=PRODUCTION, version=target, previous=current)
