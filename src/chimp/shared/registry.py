"""MLflow registry adapter (INTERFACE DRAFT - being implemented).

``ModelRegistry`` is synchronous (it wraps ``MlflowClient``) and is what a training subprocess
uses. ``AsyncModelRegistry`` wraps it for services: every call runs in a worker thread behind a
capacity limiter, so MLflow's sync client never blocks the event loop.

Aliases, not stages: ``production``, ``staging``, ``user-<id>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo, RegisteredModelInfo

PRODUCTION = "production"
STAGING = "staging"


def user_alias(user_id: str) -> str:
    """The alias of a user's calibrated model."""
    raise NotImplementedError


class ModelRegistry:
    def __init__(self, tracking_uri: str, *, experiment: str = "chimp") -> None:
        raise NotImplementedError

    def log_model_version(
        self,
        name: str,
        onnx_path: Path,
        metadata: ModelMetadata,
        *,
        run_id: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        metric_history: dict[str, list[float]] | None = None,
        artifacts: list[Path] | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersionInfo:
        raise NotImplementedError

    def get_version(self, name: str, version: str) -> ModelVersionInfo:
        raise NotImplementedError

    def resolve(self, name: str, *, alias: str | None = None, version: str | None = None) -> ModelVersionInfo:
        raise NotImplementedError

    def set_alias(self, name: str, alias: str, version: str) -> None:
        raise NotImplementedError

    def delete_alias(self, name: str, alias: str) -> None:
        raise NotImplementedError

    def aliases(self, name: str) -> dict[str, str]:
        raise NotImplementedError

    def list_models(self) -> list[RegisteredModelInfo]:
        raise NotImplementedError

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        raise NotImplementedError

    def download_onnx(self, name: str, version: str, dest_dir: Path) -> Path:
        raise NotImplementedError

    def check(self) -> None:
        raise NotImplementedError
