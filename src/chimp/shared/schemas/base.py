"""Base classes for contracts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Request and contract models reject unknown fields so typos fail loudly."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error any CHIMP service returns has this JSON shape.

    ``error`` is a human-readable message (and is what Open Inference Protocol clients read),
    ``code`` a stable machine-readable identifier, ``detail`` optional structured context,
    e.g. one entry per invalid field.
    """

    error: str
    code: str
    detail: Any = None
