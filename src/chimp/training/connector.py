"""The plugin's connector to the registry, used inside the training child process.

``store_model`` only stages; :meth:`RegistryConnector.commit` registers what was staged after the
plugin returned successfully, then applies the promotion rules. So a plugin that fails or is
cancelled after calling ``store_model`` leaves nothing in the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimp.shared.errors import NotFoundError
from chimp.shared.registry import ModelRegistry
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo
from chimp.training.plugins.base import ProductionModel
from chimp.training.promotion import aliases_for_new_version

logger = logging.getLogger(__name__)


@dataclass
class StagedModel:
    name: str
    onnx_path: Path
    metadata: ModelMetadata
    params: dict[str, Any]
    metrics: dict[str, float]
    metric_history: dict[str, list[float]]
    artifacts: list[Path]
    tags: dict[str, str]


@dataclass
class RegistryConnector:
    registry_factory: Callable[[], ModelRegistry]
    download_dir: Path
    user_id: str | None = None
    promote: bool = False
    run_tags: dict[str, str] = field(default_factory=dict)
    staged: list[StagedModel] = field(default_factory=list)
    _registry: ModelRegistry | None = None

    @property
    def registry(self) -> ModelRegistry:
        # Made on first use: plugins that never touch the registry need no MLflow at all.
        if self._registry is None:
            self._registry = self.registry_factory()
        return self._registry

    def get_production_model(
        self, name: str, *, alias: str = "production"
    ) -> ProductionModel | None:
        try:
            version = self.registry.resolve(name, alias=alias)
        except NotFoundError:
            return None
        dest = self.download_dir / f"{name}-v{version.version}"
        dest.mkdir(parents=True, exist_ok=True)
        onnx_path = self.registry.download_onnx(name, version.version, dest)
        return ProductionModel(onnx_path=onnx_path, version=version)

    def store_model(
        self,
        name: str,
        onnx_path: Path,
        metadata: ModelMetadata,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        metric_history: Mapping[str, list[float]] | None = None,
        artifacts: list[Path] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        if not onnx_path.is_file():
            raise FileNotFoundError(f"ONNX file to store does not exist: {onnx_path}")
        self.staged.append(
            StagedModel(
                name=name,
                onnx_path=onnx_path,
                metadata=metadata,
                params=dict(params or {}),
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                metric_history={
                    k: [float(x) for x in v] for k, v in (metric_history or {}).items()
                },
                artifacts=list(artifacts or []),
                tags=dict(tags or {}),
            )
        )

    def _existing_aliases(self, name: str) -> dict[str, str]:
        try:
            return self.registry.aliases(name)
        except NotFoundError:
            return {}

    def commit(self) -> list[ModelVersionInfo]:
        """Register every staged model and move its aliases; returns the final versions."""
        versions = []
        for model in self.staged:
            existing = self._existing_aliases(model.name)
            info = self.registry.log_model_version(
                model.name,
                model.onnx_path,
                model.metadata,
                params=model.params,
                metrics=model.metrics,
                metric_history=model.metric_history,
                artifacts=model.artifacts,
                tags={**self.run_tags, **model.tags},
            )
            for alias in aliases_for_new_version(
                existing, user_id=self.user_id, promote=self.promote
            ):
                self.registry.set_alias(model.name, alias, info.version)
                logger.info("alias %s of %s -> version %s", alias, model.name, info.version)
            versions.append(self.registry.get_version(model.name, info.version))
        self.staged.clear()
        return versions
