"""Dataset descriptions."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel

DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_DATASET_NAME_RE = re.compile(DATASET_NAME_PATTERN)


def is_valid_dataset_name(name: str) -> bool:
    return bool(_DATASET_NAME_RE.match(name)) and ".." not in name


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
