"""Names in the registry: aliases CHIMP gives meaning to, and checks on names, aliases, versions.

Aliases, not stages: ``production``, ``staging``, ``user-<id>``.
"""

from __future__ import annotations

import re

from chimp.shared.errors import BadRequestError

PRODUCTION = "production"
STAGING = "staging"
USER_ALIAS_PREFIX = "user-"
SHARED_ALIASES = (PRODUCTION, STAGING)

# MLflow's own rules (mlflow.utils.validation) narrowed to ASCII: aliases are ``[\w-]``, and
# ``latest`` / ``v<digits>`` are reserved for version references.
_ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_RESERVED_ALIAS_RE = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
_USER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Names end up inside MLflow search filters ("name='...'"), so quotes are kept out.
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,255}$")
_VERSION_RE = re.compile(r"^[1-9][0-9]{0,9}$")


def user_alias(user_id: str) -> str:
    """The alias of a user's calibrated model: ``user-<id>``."""
    cleaned = user_id.strip()
    if not _USER_ID_RE.fullmatch(cleaned):
        raise BadRequestError(f"invalid user id {user_id!r}: use 1-64 letters, digits, '-' or '_'")
    return f"user-{cleaned}"


def is_user_alias(alias: str) -> bool:
    """True for ``user-<id>``: a personal alias, serving one user only."""
    return alias.startswith(USER_ALIAS_PREFIX) and bool(
        _USER_ID_RE.fullmatch(alias[len(USER_ALIAS_PREFIX) :])
    )


def check_chimp_alias(alias: str) -> str:
    """Only the aliases CHIMP gives meaning to: ``production``, ``staging``, ``user-<id>``."""
    if alias in SHARED_ALIASES or is_user_alias(alias):
        return alias
    raise BadRequestError(
        f"unknown alias '{alias}': use 'production', 'staging' or 'user-<id>'",
        detail={"alias": alias},
    )


def validate_alias(alias: str) -> str:
    if not _ALIAS_RE.fullmatch(alias) or _RESERVED_ALIAS_RE.fullmatch(alias):
        raise BadRequestError(
            f"invalid alias {alias!r}: use letters, digits, '-' or '_' "
            "(not 'latest' or 'v<number>')"
        )
    return alias


def check_model_name(name: str) -> str:
    if not _MODEL_NAME_RE.fullmatch(name):
        raise BadRequestError(
            f"invalid model name {name!r}: use letters, digits, spaces, '.', '-' or '_'"
        )
    return name


def check_version(version: str) -> str:
    if not _VERSION_RE.fullmatch(version):
        raise BadRequestError(f"invalid model version {version!r}: expected a positive integer")
    return version
