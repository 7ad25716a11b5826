"""Tracking runs in MLflow: the part of the registry adapter that logs training as it happens."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request, verify_rest_response

from chimp.shared.errors import BadRequestError
from chimp.shared.registry.mlflow_errors import apply_http_defaults, mlflow_call

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

METRIC_BATCH = 1000  # MLflow's limit on metrics per log_batch call


def now_ms() -> int:
    return int(time.time() * 1000)


class RunTracker:
    """MLflow runs of CHIMP's experiment: open one, log params, metrics, tags, files, end it.

    The run half of :class:`chimp.shared.registry.ModelRegistry`, which adds the model registry.
    """

    def __init__(
        self, tracking_uri: str, *, experiment: str = "chimp", check_timeout_s: float = 2.0
    ) -> None:
        apply_http_defaults()
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._check_timeout_s = check_timeout_s
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None

    # -- health ----------------------------------------------------------------------------

    @mlflow_call
    def check(self) -> None:
        """Raise DependencyUnavailableError unless MLflow answers within ``check_timeout_s``."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            self._client.search_experiments(max_results=1)
            return
        # One attempt with a short timeout: a health probe must not sit in MLflow's retries.
        endpoint = "/api/2.0/mlflow/experiments/search"
        response = http_request(  # type: ignore[no-untyped-call]
            get_default_host_creds(self.tracking_uri),  # type: ignore[no-untyped-call]
            endpoint,
            "GET",
            max_retries=0,
            timeout=self._check_timeout_s,
            params={"max_results": 1},
        )
        verify_rest_response(response, endpoint)

    # -- runs ------------------------------------------------------------------------------

    def _ensure_experiment(self) -> str:
        if self._experiment_id is None:
            found = self._client.get_experiment_by_name(self.experiment)
            if found is not None:
                if found.lifecycle_stage == "deleted":  # deleted in the UI: runs need it back
                    self._client.restore_experiment(found.experiment_id)
                self._experiment_id = found.experiment_id
            else:
                try:
                    self._experiment_id = self._client.create_experiment(self.experiment)
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # lost a creation race
                        raise
                    again = self._client.get_experiment_by_name(self.experiment)
                    assert again is not None
                    self._experiment_id = again.experiment_id
        return self._experiment_id

    @mlflow_call
    def start_run(
        self,
        run_name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Open a run in the experiment (created if missing) and return its id."""
        run = self._client.create_run(
            self._ensure_experiment(), run_name=run_name, tags=dict(tags or {})
        )
        run_id: str = run.info.run_id
        if params:
            self._log_params(run_id, params)
        return run_id

    @mlflow_call
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._log_params(run_id, params)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow accepts 100 params per batch
            self._client.log_batch(run_id, params=items[start : start + 100])

    @mlflow_call
    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], *, step: int | None = None
    ) -> None:
        """Log metric values, e.g. once per epoch with ``step=epoch`` while training."""
        now = now_ms()
        self._log_metric_batch(
            run_id, [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        )

    def _log_metric_batch(self, run_id: str, metrics: Sequence[Metric]) -> None:
        for start in range(0, len(metrics), METRIC_BATCH):
            self._client.log_batch(run_id, metrics=list(metrics[start : start + METRIC_BATCH]))

    @mlflow_call
    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    @mlflow_call
    def log_artifacts(
        self, run_id: str, paths: Sequence[Path], *, artifact_path: str | None = None
    ) -> None:
        """Upload files (e.g. plots) to the run, under ``artifact_path`` or the run's root."""
        for path in paths:
            if not path.is_file():
                raise BadRequestError(f"artifact file not found: {path}")
            self._client.log_artifact(run_id, str(path), artifact_path)

    @mlflow_call
    def end_run(self, run_id: str, status: RunStatus = "FINISHED") -> None:
        self._client.set_terminated(run_id, status=status)

    @contextmanager
    def run(
        self,
        run_name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """A run that ends FINISHED, or FAILED if the block raises."""
        run_id = self.start_run(run_name, params=params, tags=tags)
        try:
            yield run_id
        except BaseException:
            self.end_run(run_id, "FAILED")
            raise
        self.end_run(run_id, "FINISHED")
