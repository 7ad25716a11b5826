"""Dataset descriptions."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel

DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_DATASET_NAME_RE = re.compile(DATASET_NAME_PATTERN)

PERSONAL_DATASET_PREFIX = "calib-"
"""Datasets named ``calib-<user id>-<digits>`` hold one person's face frames and are theirs."""
# Greedy: user ids may contain '-', so the owner is everything up to the last all-digit part.
_PERSONAL_RE = re.compile(r"^calib-(?P<user>[A-Za-z0-9_-]+)-[0-9]+$")


def is_valid_dataset_name(name: str) -> bool:
    return bool(_DATASET_NAME_RE.match(name)) and ".." not in name


def personal_dataset_prefix(user_id: str) -> str:
    return f"{PERSONAL_DATASET_PREFIX}{user_id}-"


def dataset_owner(name: str) -> str | None:
    """The user a personal dataset belongs to; None for a shared one (or a malformed
    personal-looking name, which then belongs to no user and only the admin sees)."""
    match = _PERSONAL_RE.match(name)
    return match.group("user") if match else None


def visible_to(name: str, user_id: str) -> bool:
    """Whether ``user_id`` may see and use dataset ``name``: shared ones, and their own."""
    if not name.startswith(PERSONAL_DATASET_PREFIX):
        return True
    return dataset_owner(name) == user_id


class DatasetEntry(BaseModel):
    path: str
    size: int


class DatasetInfo(BaseModel):
    name: str
    files: int
    size_bytes: int
    created_at: datetime


class DatasetManifest(DatasetInfo):
    entries: list[DatasetEntry]
