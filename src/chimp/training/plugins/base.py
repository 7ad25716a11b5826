"""What a training plugin is and what it gets to work with.

A plugin is a :class:`BasePlugin` subclass with a class-level :class:`PluginInfo` and a ``run``
method. It runs in a child process of the worker, gets a :class:`PluginContext` with its typed
arguments, its datasets already downloaded, a temp folder, progress and cancellation hooks,
params and metrics logging to the task's MLflow run, and a :class:`ModelConnector` to read the
production model and store a new one.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo
from chimp.shared.schemas.plugins import PluginInfo


class TaskCancelledError(Exception):
    """Raised by :meth:`PluginContext.check_cancelled` once the task was cancelled."""


@dataclass(frozen=True)
class ProductionModel:
    """A registered version downloaded for the plugin: its ONNX file and what the registry says."""

    onnx_path: Path
    version: ModelVersionInfo


class ModelConnector(Protocol):
    """The plugin's door to the model registry."""

    def get_production_model(
        self, name: str, *, alias: str = "production"
    ) -> ProductionModel | None:
        """Download the version ``alias`` points at, or None when the alias (or model) is absent."""
        ...

    def store_model(
        self,
        name: str,
        onnx_path: Path,
        metadata: ModelMetadata | None,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        metric_history: Mapping[str, list[float]] | None = None,
        artifacts: list[Path] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Stage a model for registration.

        The version is registered from the task's MLflow run (with these params, final metrics,
        tags, artifacts, metadata, and the per-epoch history not already streamed with
        :meth:`PluginContext.log_metrics`) and promoted only after ``run`` returns successfully
        and the task was not cancelled, so a failed or cancelled run never leaves a version
        behind: its MLflow run ends FAILED or KILLED.
        """
        ...


@dataclass
class PluginContext:
    """What a running plugin gets; ``datasets`` maps each dataset key to its local folder and
    ``dataset_names`` to the stored dataset's name (for the model's metadata)."""

    task_id: str
    arguments: dict[str, Any]
    datasets: dict[str, Path]
    tmp_dir: Path
    connector: ModelConnector
    logger: logging.Logger
    default_model_name: str = "emotion-recognition"
    dataset_names: dict[str, str] = field(default_factory=dict)
    user_id: str | None = None
    promote: bool = False
    progress_sink: Callable[[float, str], None] = field(default=lambda _f, _m: None, repr=False)
    cancel_probe: Callable[[], bool] = field(default=lambda: False, repr=False)
    params_sink: Callable[[Mapping[str, Any]], None] = field(default=lambda _p: None, repr=False)
    metrics_sink: Callable[[Mapping[str, float], int], None] = field(
        default=lambda _m, _s: None, repr=False
    )

    def report_progress(self, fraction: float, message: str = "") -> None:
        """Tell the task how far along it is (0..1) and what it is doing."""
        self.progress_sink(min(1.0, max(0.0, float(fraction))), message)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters to the task's MLflow run now (its arguments are already there)."""
        self.params_sink(params)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int) -> None:
        """Log metric values to the task's MLflow run now, e.g. once per epoch with
        ``step=epoch``, so the MLflow UI draws the curves while the model trains."""
        self.metrics_sink(metrics, step)

    def is_cancelled(self) -> bool:
        return self.cancel_probe()

    def check_cancelled(self) -> None:
        """Raise :class:`TaskCancelledError` when the task was cancelled; call it between steps."""
        if self.cancel_probe():
            raise TaskCancelledError("task cancelled")


class BasePlugin(ABC):
    """Subclass, set ``info`` and implement ``run``; the result must be JSON-serialisable."""

    info: ClassVar[PluginInfo]

    @abstractmethod
    def run(self, context: PluginContext) -> Mapping[str, Any] | None:
        """Do the work; raise to fail the task (its message becomes the task's error)."""
