"""Response and request bodies of the training API that are not shared contracts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from chimp.shared.schemas.base import StrictModel
from chimp.shared.schemas.plugins import PluginInfo


class PluginDetail(PluginInfo):
    argument_schema: dict[str, Any] = Field(
        description="JSON Schema of the arguments object POST /tasks/run/{plugin} accepts."
    )

    @classmethod
    def of(cls, info: PluginInfo) -> PluginDetail:
        return cls(**info.model_dump(), argument_schema=info.arguments_schema())


class AliasUpdate(StrictModel):
    version: str = Field(pattern=r"^[1-9][0-9]{0,9}$", description="The version to point at.")
    reason: str | None = Field(
        default=None, max_length=500, description="Why, for the history (optional)."
    )


class ArtifactEntry(BaseModel):
    path: str
    size: int | None = None
