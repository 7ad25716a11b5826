"""The plugin's connector to MLflow, used inside the training child process.

A task has one MLflow run. The runner opens it when the task starts (plugins that make no model
open it on first use), so params and per-epoch metrics show in the MLflow UI while the model
trains. ``store_model`` only stages: :meth:`RegistryConnector.commit` registers the staged model
from the task's run after the plugin returned successfully. Aliases move afterwards, in the
worker, through the evaluation gate (:mod:`chimp.training.task_gate`).
A plugin that fails or is cancelled ends its run FAILED or KILLED and creates no version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chimp.shared.errors import NotFoundError
from chimp.shared.registry import ModelRegistry, RunStatus
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo
from chimp.training.plugins.base import ProductionModel

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
    run_name: str | None = None
    run_tags: dict[str, str] = field(default_factory=dict)
    run_params: dict[str, Any] = field(default_factory=dict)  # logged when the run opens
    on_run_started: Callable[[str], None] = field(default=lambda _run_id: None, repr=False)
    staged: list[StagedModel] = field(default_factory=list)
    run_id: str | None = None
    _registry: ModelRegistry | None = None
    _last_step: dict[str, int] = field(default_factory=dict)  # metrics streamed while training

    @property
    def registry(self) -> ModelRegistry:
        # Made on first use: plugins that never touch the registry need no MLflow at all.
        if self._registry is None:
            self._registry = self.registry_factory()
        return self._registry

    # -- the task's run --------------------------------------------------------------------

    def start_run(self) -> str:
        """The task's MLflow run, opened (with ``run_params`` and ``run_tags``) on first call."""
        if self.run_id is None:
            self.run_id = self.registry.start_run(
                self.run_name, params=self.run_params, tags=self.run_tags
            )
            logger.info("MLflow run %s opened", self.run_id)
            self.on_run_started(self.run_id)
        return self.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.registry.log_params(self.start_run(), params)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int) -> None:
        self.registry.log_metrics(self.start_run(), metrics, step=step)
        self._last_step.update(dict.fromkeys(metrics, step))

    def end_run(self, status: RunStatus) -> None:
        """End the task's run, if one was opened."""
        if self.run_id is not None:
            self.registry.end_run(self.run_id, status)

    def abort(self, status: RunStatus) -> None:
        """End the run of a failed or cancelled task without hiding why it stopped."""
        try:
            self.end_run(status)
        except Exception:
            logger.warning("could not mark MLflow run %s %s", self.run_id, status, exc_info=True)

    # -- the plugin's side -----------------------------------------------------------------

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

    # -- registering -----------------------------------------------------------------------

    def _after_streaming(
        self, run_id: str, history: dict[str, list[float]], summary: dict[str, float]
    ) -> tuple[dict[str, list[float]], dict[str, float]]:
        """What is left to log of a model's curves and final values once some were streamed.

        A streamed curve is not logged twice; a final value of a streamed metric goes at its last
        step, so it is the value MLflow shows for the run.
        """
        for key, value in summary.items():
            if key in self._last_step:
                self.registry.log_metrics(run_id, {key: value}, step=self._last_step[key])
        return (
            {k: v for k, v in history.items() if k not in self._last_step},
            {k: v for k, v in summary.items() if k not in self._last_step},
        )

    def commit(self) -> list[ModelVersionInfo]:
        """Register every staged model (no alias moves); returns the new versions.

        The first model is registered from the task's run, next to the metrics it streamed. A
        run holds one ``model/`` folder, so any further model gets a run of its own.
        """
        versions = []
        for index, model in enumerate(self.staged):
            run_id = self.start_run() if index == 0 else None
            history, summary = model.metric_history, model.metrics
            if run_id is not None:
                history, summary = self._after_streaming(run_id, history, summary)
            info = self.registry.log_model_version(
                model.name,
                model.onnx_path,
                model.metadata,
                run_id=run_id,
                params=model.params,
                metrics=summary,
                metric_history=history,
                artifacts=model.artifacts,
                tags={**self.run_tags, **model.tags},
            )
            logger.info("registered %s version %s", model.name, info.version)
            versions.append(info)
        self.staged.clear()
        return versions
