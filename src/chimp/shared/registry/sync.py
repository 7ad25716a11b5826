"""``ModelRegistry``: CHIMP's synchronous view of MLflow's tracking server and model registry.

It wraps ``MlflowClient``; a training subprocess uses it directly, services through
:class:`chimp.shared.registry.AsyncModelRegistry`. What it writes is described in
:mod:`chimp.shared.registry.layout`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import mlflow.artifacts
from mlflow.entities import Metric, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from pydantic import ValidationError

from chimp.shared.errors import BadRequestError, NotFoundError
from chimp.shared.model_fit import read_graph
from chimp.shared.registry.layout import (
    METADATA_FILE,
    MODEL_DIR,
    ONNX_FILE,
    TAG_DECISION,
    TAG_METADATA,
    TAG_USER,
    ArtifactFile,
    check_onnx_matches,
    find_onnx,
    metadata_tags,
)
from chimp.shared.registry.mlflow_errors import mlflow_call
from chimp.shared.registry.names import (
    PRODUCTION,
    check_model_name,
    check_version,
    user_alias,
    validate_alias,
)
from chimp.shared.registry.runs import RunStatus, RunTracker, now_ms
from chimp.shared.schemas.continual import Decision
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo, RegisteredModelInfo

__all__ = ["ModelRegistry", "RunStatus"]

logger = logging.getLogger(__name__)


def _ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


class ModelRegistry(RunTracker):
    """CHIMP's view of the MLflow tracking server and model registry (synchronous)."""

    # -- registering -----------------------------------------------------------------------

    @mlflow_call
    def log_model_version(
        self,
        name: str,
        onnx_path: Path,
        metadata: ModelMetadata | None,
        *,
        run_id: str | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        metric_history: dict[str, list[float]] | None = None,
        artifacts: list[Path] | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersionInfo:
        """Log a model to ``run_id`` (or a new run, ended here) and register it as a version.

        ``metric_history`` holds per-epoch values, logged with their index as the step.
        ``artifacts`` are extra files (plots) stored at the run's root. Without ``metadata`` the
        version is served from its ONNX graph only (Open Inference Protocol), until metadata is
        added with :meth:`set_metadata`.
        """
        check_model_name(name)
        if metadata is None:
            read_graph(onnx_path)  # still a readable ONNX file
        else:
            check_onnx_matches(onnx_path, metadata)
        for extra in artifacts or []:
            if not extra.is_file():
                raise BadRequestError(f"artifact file not found: {extra}")
        chimp_tags = metadata_tags(metadata) if metadata is not None else {}
        owns_run = run_id is None
        if run_id is None:
            run_id = self.start_run(name, tags={**chimp_tags, **(tags or {})})
        try:
            # CHIMP's tags win over the caller's: serving reads its metadata from them.
            run_tags = {**(tags or {}), **chimp_tags}
            self._log_run_contents(
                run_id, onnx_path, metadata, params, metrics, metric_history, artifacts, run_tags
            )
            self._ensure_registered_model(name)
            created = self._client.create_model_version(
                name,
                source=f"runs:/{run_id}/{MODEL_DIR}",
                run_id=run_id,
                tags={**(tags or {}), **chimp_tags},
                await_creation_for=60,
            )
        except BaseException:
            if owns_run:
                self._client.set_terminated(run_id, status="FAILED")
            raise
        if owns_run:
            self._client.set_terminated(run_id, status="FINISHED")
        return self._version_info(created, aliases=[])

    def _log_run_contents(
        self,
        run_id: str,
        onnx_path: Path,
        metadata: ModelMetadata | None,
        params: Mapping[str, Any] | None,
        metrics: Mapping[str, float] | None,
        metric_history: Mapping[str, list[float]] | None,
        artifacts: Sequence[Path] | None,
        tags: Mapping[str, str],
    ) -> None:
        if params:
            self._log_params(run_id, params)
        now = now_ms()
        curves = metric_history or {}
        history = [
            Metric(key, float(value), now, step)
            for key, values in curves.items()
            for step, value in enumerate(values)
        ]
        # A summary value of a metric that also has a curve is logged at the curve's last step,
        # one millisecond later, so it is the value MLflow reports as the run's metric.
        summary = [
            Metric(key, float(value), now + 1, max(len(curves.get(key, [])) - 1, 0))
            for key, value in (metrics or {}).items()
        ]
        self._log_metric_batch(run_id, history + summary)
        self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        # The ONNX file always lands as model/model.onnx, whatever it was called locally.
        with tempfile.TemporaryDirectory(prefix="chimp-model-") as staging:
            folder = Path(staging)
            shutil.copyfile(onnx_path, folder / ONNX_FILE)
            if metadata is not None:
                (folder / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
            self._client.log_artifacts(run_id, staging, MODEL_DIR)
        for extra in artifacts or []:
            self._client.log_artifact(run_id, str(extra))

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self._client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self._client.create_registered_model(name)
            except MlflowException as again:
                if again.error_code != "RESOURCE_ALREADY_EXISTS":  # lost a creation race
                    raise

    @mlflow_call
    def set_metadata(
        self, name: str, version: str, metadata: ModelMetadata, *, onnx_path: Path | None = None
    ) -> ModelVersionInfo:
        """Give an existing version (e.g. one logged with plain MLflow) CHIMP metadata.

        The version's ONNX file (``onnx_path`` when the caller already downloaded it) is checked
        against ``metadata`` by the rule registration and serving use; only then are the
        version's tags written.
        """
        check_model_name(name)
        if onnx_path is not None:
            check_onnx_matches(onnx_path, metadata)
        else:
            with tempfile.TemporaryDirectory(prefix="chimp-check-") as tmp:
                check_onnx_matches(self.download_onnx(name, version, Path(tmp)), metadata)
        for key, value in metadata_tags(metadata).items():
            self._client.set_model_version_tag(name, version, key, value)
        return self.get_version(name, version)

    # -- reading ---------------------------------------------------------------------------

    def _version_info(self, mv: ModelVersion, aliases: list[str]) -> ModelVersionInfo:
        tags = dict(mv.tags or {})
        raw = tags.pop(TAG_METADATA, None)
        decision: Decision | None = None
        raw_decision = tags.pop(TAG_DECISION, None)
        if raw_decision is not None:
            try:
                decision = Decision.model_validate_json(raw_decision)
            except ValidationError:
                decision = None
        metadata: ModelMetadata | None = None
        if raw is not None:
            try:
                metadata = ModelMetadata.model_validate_json(raw)
            except ValidationError:
                metadata = None  # written by something else; the version stays listable
        metrics: dict[str, float] = {}
        if mv.run_id:
            try:
                metrics = dict(self._client.get_run(mv.run_id).data.metrics)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # run deleted: no metrics
                    raise
        return ModelVersionInfo(
            name=mv.name,
            version=str(mv.version),
            aliases=sorted(aliases),
            run_id=mv.run_id or None,
            metadata=metadata,
            metrics=metrics,
            tags=tags,
            created_at=_ms_to_datetime(mv.creation_timestamp),
            user_id=tags.get(TAG_USER) or None,
            decision=decision,
        )

    def _aliases_of(self, name: str) -> dict[str, str]:
        try:
            model = self._client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFoundError(f"model {name!r} is not registered") from exc
            raise
        return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}

    def _model_version(self, name: str, version: str) -> ModelVersion:
        check_version(version)
        try:
            return self._client.get_model_version(name, version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFoundError(f"model {name!r} has no version {version}") from exc
            raise

    def _get(self, name: str, version: str, aliases: Mapping[str, str]) -> ModelVersionInfo:
        mv = self._model_version(name, version)
        return self._version_info(mv, [a for a, v in aliases.items() if v == version])

    @mlflow_call
    def get_version(self, name: str, version: str) -> ModelVersionInfo:
        check_model_name(name)
        return self._get(name, version, self._aliases_of(name))

    @mlflow_call
    def resolve(
        self, name: str, *, alias: str | None = None, version: str | None = None
    ) -> ModelVersionInfo:
        """The version named by ``version`` or ``alias`` (``production`` when neither)."""
        if alias is not None and version is not None:
            raise BadRequestError("give an alias or a version, not both")
        check_model_name(name)
        aliases = self._aliases_of(name)
        if version is None:
            alias = validate_alias(alias or PRODUCTION)
            if alias not in aliases:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            version = aliases[alias]
        return self._get(name, version, aliases)

    @mlflow_call
    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (moving it if it pointed elsewhere)."""
        check_model_name(name)
        validate_alias(alias)
        self._model_version(name, version)  # a clear NotFoundError for an unknown model/version
        self._client.set_registered_model_alias(name, alias, version)

    @mlflow_call
    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Add or overwrite tags on a model version (e.g. the gate's decision)."""
        check_model_name(name)
        self._model_version(name, version)
        for key, value in tags.items():
            self._client.set_model_version_tag(name, version, key, value)

    @mlflow_call
    def delete_alias(self, name: str, alias: str) -> None:
        check_model_name(name)
        if alias not in self._aliases_of(name):
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        self._client.delete_registered_model_alias(name, alias)

    @mlflow_call
    def aliases(self, name: str) -> dict[str, str]:
        """``{alias: version}`` for a registered model."""
        check_model_name(name)
        return self._aliases_of(name)

    @mlflow_call
    def list_models(self) -> list[RegisteredModelInfo]:
        out: list[RegisteredModelInfo] = []
        token: str | None = None
        while True:
            page = self._client.search_registered_models(max_results=1000, page_token=token)
            for model in page:
                versions = [int(v.version) for v in model.latest_versions or []]
                out.append(
                    RegisteredModelInfo(
                        name=model.name,
                        aliases={str(a): str(v) for a, v in (model.aliases or {}).items()},
                        latest_version=str(max(versions)) if versions else None,
                    )
                )
            token = page.token
            if not token:
                return sorted(out, key=lambda m: m.name)

    @mlflow_call
    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of a model, newest first, with its aliases and run metrics."""
        check_model_name(name)
        aliases = self._aliases_of(name)
        found = self._client.search_model_versions(f"name='{name}'")
        return [
            self._version_info(mv, [a for a, v in aliases.items() if v == str(mv.version)])
            for mv in sorted(found, key=lambda mv: int(mv.version), reverse=True)
        ]

    @mlflow_call
    def metric_history(self, name: str, version: str, key: str) -> list[tuple[int, float]]:
        """``[(step, value)]`` of a metric of the version's run, by step (latest per step)."""
        run_id = self._run_of(name, version)
        latest: dict[int, tuple[int, float]] = {}  # step -> (timestamp, value)
        for point in self._client.get_metric_history(run_id, key):
            step, stamp = int(point.step), int(point.timestamp)
            if step not in latest or stamp >= latest[step][0]:
                latest[step] = (stamp, float(point.value))
        return [(step, latest[step][1]) for step in sorted(latest)]

    # -- files -----------------------------------------------------------------------------

    def _run_of(self, name: str, version: str) -> str:
        # Only the run id: the version's metrics (another MLflow call) are not needed here.
        check_model_name(name)
        self._aliases_of(name)  # "not registered" rather than "no version" for an unknown model
        run_id = self._model_version(name, version).run_id
        if not run_id:
            raise NotFoundError(f"model {name!r} version {version} has no run")
        return str(run_id)

    @mlflow_call
    def download_onnx(self, name: str, version: str, dest_dir: Path) -> Path:
        """Download the version's ONNX file into ``dest_dir`` and return its path.

        A version CHIMP registered has its file as ``model/model.onnx`` in its run. For one
        registered another way (e.g. ``mlflow.onnx.log_model``) the whole model folder is
        downloaded (external weight files stay beside the graph) and its ONNX file found.
        """
        mv = self._model_version(name, version)
        if mv.run_id and mv.source == f"runs:/{mv.run_id}/{MODEL_DIR}":
            return self.download_version_artifact(
                name, version, f"{MODEL_DIR}/{ONNX_FILE}", dest_dir
            )
        uri = self._client.get_model_version_download_uri(name, version)
        dest_dir.mkdir(parents=True, exist_ok=True)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(dest_dir), tracking_uri=self.tracking_uri
            )
        )
        return find_onnx(local, f"model {name!r} version {version}")

    @mlflow_call
    def list_version_artifacts(self, name: str, version: str) -> list[ArtifactFile]:
        """All files stored with the version's run (model files and plots), sorted by path."""
        run_id = self._run_of(name, version)
        files: list[ArtifactFile] = []
        pending: list[str | None] = [None]
        while pending:
            folder = pending.pop()
            for entry in self._client.list_artifacts(run_id, folder):
                if entry.is_dir:
                    pending.append(entry.path)
                else:
                    files.append(ArtifactFile(path=entry.path, size=entry.file_size))
        return sorted(files, key=lambda f: f.path)

    @mlflow_call
    def download_version_artifact(self, name: str, version: str, path: str, dest_dir: Path) -> Path:
        """Download one file of the version's run (``path`` as listed) into ``dest_dir``."""
        relative = PurePosixPath(path)
        if not relative.parts or relative.is_absolute() or ".." in relative.parts:
            raise BadRequestError(f"invalid artifact path {path!r}")
        run_id = self._run_of(name, version)
        dest_dir.mkdir(parents=True, exist_ok=True)
        try:
            local = self._client.download_artifacts(run_id, str(relative), str(dest_dir))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFoundError(
                    f"model {name!r} version {version} has no artifact {path!r}"
                ) from exc
            raise
        if not Path(local).is_file():
            # MLflow downloads a folder whole; callers (and HTTP clients) want one file.
            raise BadRequestError(
                f"artifact {path!r} of model {name!r} version {version} is a folder, not a file",
                detail={"path": path},
            )
        return Path(local)

    # -- one user's models ---------------------------------------------------------------

    @mlflow_call
    def user_versions(self, user_id: str) -> list[ModelVersionInfo]:
        """Every version trained for ``user_id`` (runs tagged ``chimp.user_id``), any model."""
        user_alias(user_id)  # the same id rule as the alias; also keeps quotes out of the filter
        found = self._client.search_model_versions(f"tags.`{TAG_USER}` = '{user_id}'")
        out: list[ModelVersionInfo] = []
        aliases: dict[str, dict[str, str]] = {}
        for mv in sorted(found, key=lambda mv: (mv.name, int(mv.version))):
            if mv.name not in aliases:
                aliases[mv.name] = self._aliases_of(mv.name)
            named = [a for a, v in aliases[mv.name].items() if v == str(mv.version)]
            out.append(self._version_info(mv, named))
        return out

    @mlflow_call
    def delete_version(self, name: str, version: str) -> None:
        """Remove a version, its run and the run's files (a person's data leaving for good).

        The run is deleted too, so its parameters and tags no longer show; MLflow keeps a
        deleted run's record until ``mlflow gc`` purges it, but its artifacts go at once.
        """
        check_model_name(name)
        mv = self._model_version(name, version)
        for alias in mv.aliases or []:
            self._client.delete_registered_model_alias(name, alias)
        self._client.delete_model_version(name, version)
        if mv.run_id:
            try:
                run = self._client.get_run(mv.run_id)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                return
            try:
                get_artifact_repository(
                    run.info.artifact_uri, tracking_uri=self.tracking_uri
                ).delete_artifacts()  # type: ignore[no-untyped-call]
            except Exception:
                logger.warning("could not delete the files of run %s", mv.run_id, exc_info=True)
            self._client.delete_run(mv.run_id)
