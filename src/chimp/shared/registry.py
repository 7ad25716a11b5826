"""MLflow registry adapter.

``ModelRegistry`` is synchronous (it wraps ``MlflowClient``) and is what a training subprocess
uses. ``AsyncModelRegistry`` wraps it for services: every call runs in a worker thread behind a
capacity limiter, so MLflow's sync client never blocks the event loop.

Layout of what CHIMP writes, per training run::

    <run>/model/model.onnx          the model version's source is ``runs:/<run>/model``
    <run>/model/chimp-model.json    ModelMetadata, for anyone reading the files
    <run>/<extra files>             confusion matrix, curves, ...

and on the model version, tags ``chimp.metadata`` (the same JSON), ``chimp.task``,
``chimp.dataset``, ``chimp.plugin`` so serving reads metadata without downloading anything.

Aliases, not stages: ``production``, ``staging``, ``user-<id>``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypeVar, overload

import anyio
import anyio.to_thread
import onnx
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request, verify_rest_response
from pydantic import BaseModel, ValidationError

from chimp.shared.errors import (
    BadRequestError,
    ChimpError,
    ConflictError,
    DependencyUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from chimp.shared.schemas.models import ModelMetadata, ModelVersionInfo, RegisteredModelInfo

PRODUCTION = "production"
STAGING = "staging"

ONNX_FILE = "model.onnx"
METADATA_FILE = "chimp-model.json"
MODEL_DIR = "model"

TAG_METADATA = "chimp.metadata"
TAG_TASK = "chimp.task"
TAG_DATASET = "chimp.dataset"
TAG_PLUGIN = "chimp.plugin"

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

# MLflow's own rules (mlflow.utils.validation) narrowed to ASCII: aliases are ``[\w-]``, and
# ``latest`` / ``v<digits>`` are reserved for version references.
_ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_RESERVED_ALIAS_RE = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
_USER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Names end up inside MLflow search filters ("name='...'"), so quotes are kept out.
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,255}$")
_VERSION_RE = re.compile(r"^[1-9][0-9]{0,9}$")

# MLflow reads its HTTP retry policy from the environment on every request and offers no
# per-client setting. Its defaults (7 retries, exponential backoff, 120 s timeout) make a down
# server look like a hang for minutes; these fail within seconds. An operator's own env wins.
_HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # MlflowClient.set_terminated writes run URLs to stdout, where a training subprocess may
    # be speaking a protocol to its parent.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
_BATCH = 1000  # MLflow's limit on metrics per log_batch call


class ArtifactFile(BaseModel):
    """A file stored with a model version's run; ``path`` is relative to the run's root."""

    path: str
    size: int | None = None


def user_alias(user_id: str) -> str:
    """The alias of a user's calibrated model: ``user-<id>``."""
    cleaned = user_id.strip()
    if not _USER_ID_RE.fullmatch(cleaned):
        raise BadRequestError(f"invalid user id {user_id!r}: use 1-64 letters, digits, '-' or '_'")
    return f"user-{cleaned}"


def validate_alias(alias: str) -> str:
    if not _ALIAS_RE.fullmatch(alias) or _RESERVED_ALIAS_RE.fullmatch(alias):
        raise BadRequestError(
            f"invalid alias {alias!r}: use letters, digits, '-' or '_' "
            "(not 'latest' or 'v<number>')"
        )
    return alias


def _check_name(name: str) -> str:
    if not _MODEL_NAME_RE.fullmatch(name):
        raise BadRequestError(
            f"invalid model name {name!r}: use letters, digits, spaces, '.', '-' or '_'"
        )
    return name


def _check_version(version: str) -> str:
    if not _VERSION_RE.fullmatch(version):
        raise BadRequestError(f"invalid model version {version!r}: expected a positive integer")
    return version


def check_onnx_matches(onnx_path: Path, metadata: ModelMetadata) -> None:
    """Refuse an ONNX file that serving could not use with ``metadata``.

    Its graph must have the input and output named by the input spec, and a fixed last output
    dimension, when present, must equal the number of labels.
    """
    if not onnx_path.is_file():
        raise BadRequestError(f"ONNX file not found: {onnx_path}")
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError and friends for a corrupt file
        raise InvalidInputError(f"{onnx_path.name} is not a readable ONNX model: {exc}") from exc
    spec = metadata.input
    inputs = {i.name for i in graph.input}
    outputs = {o.name: o for o in graph.output}
    if spec.input_name not in inputs:
        raise InvalidInputError(
            f"ONNX model has no input {spec.input_name!r} (inputs: {sorted(inputs)})"
        )
    if spec.output_name not in outputs:
        raise InvalidInputError(
            f"ONNX model has no output {spec.output_name!r} (outputs: {sorted(outputs)})"
        )
    dims = outputs[spec.output_name].type.tensor_type.shape.dim
    width = dims[-1].dim_value if dims else 0
    if width and width != len(metadata.labels):
        raise InvalidInputError(
            f"ONNX output {spec.output_name!r} has {width} values but metadata lists "
            f"{len(metadata.labels)} labels"
        )


def _is_unreachable(exc: Exception) -> bool:
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    if not isinstance(exc, MlflowException):
        return False
    if exc.error_code == "TEMPORARILY_UNAVAILABLE":
        return True
    # rest_utils.http_request turns every transport failure (refused, reset, retries
    # exhausted on 5xx, timeout) into a plain MlflowException with this wording.
    message = exc.message
    return message.startswith("API request to") and (
        "failed with exception" in message or "timeout" in message
    )


def _translate(exc: Exception, uri: str) -> ChimpError | None:
    if _is_unreachable(exc):
        return DependencyUnavailableError(
            f"MLflow at {uri} is unreachable", detail={"dependency": "mlflow", "error": str(exc)}
        )
    if isinstance(exc, MlflowException):
        message = exc.message
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return NotFoundError(message)
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            return ConflictError(message)
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            return BadRequestError(message)
    return None


P = ParamSpec("P")
R = TypeVar("R")


def _mlflow_call(
    method: Callable[Concatenate[ModelRegistry, P], R],
) -> Callable[Concatenate[ModelRegistry, P], R]:
    """Turn MLflow's exceptions into CHIMP errors, naming the server when it is down."""

    @functools.wraps(method)
    def wrapper(self: ModelRegistry, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except ChimpError:
            raise
        except Exception as exc:
            mapped = _translate(exc, self.tracking_uri)
            if mapped is None:
                raise
            raise mapped from exc

    return wrapper


def _ms_to_datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _now_ms() -> int:
    return int(time.time() * 1000)


class ModelRegistry:
    """CHIMP's view of the MLflow tracking server and model registry (synchronous)."""

    def __init__(
        self, tracking_uri: str, *, experiment: str = "chimp", check_timeout_s: float = 2.0
    ) -> None:
        for key, value in _HTTP_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._check_timeout_s = check_timeout_s
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None

    # -- health ----------------------------------------------------------------------------

    @_mlflow_call
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

    @_mlflow_call
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

    @_mlflow_call
    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._log_params(run_id, params)

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow accepts 100 params per batch
            self._client.log_batch(run_id, params=items[start : start + 100])

    @_mlflow_call
    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float], *, step: int | None = None
    ) -> None:
        """Log metric values, e.g. once per epoch with ``step=epoch`` while training."""
        now = _now_ms()
        self._log_metric_batch(
            run_id, [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        )

    def _log_metric_batch(self, run_id: str, metrics: Sequence[Metric]) -> None:
        for start in range(0, len(metrics), _BATCH):
            self._client.log_batch(run_id, metrics=list(metrics[start : start + _BATCH]))

    @_mlflow_call
    def set_run_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    @_mlflow_call
    def log_artifacts(
        self, run_id: str, paths: Sequence[Path], *, artifact_path: str | None = None
    ) -> None:
        """Upload files (e.g. plots) to the run, under ``artifact_path`` or the run's root."""
        for path in paths:
            if not path.is_file():
                raise BadRequestError(f"artifact file not found: {path}")
            self._client.log_artifact(run_id, str(path), artifact_path)

    @_mlflow_call
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

    # -- registering -----------------------------------------------------------------------

    @_mlflow_call
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
        """Log a model to ``run_id`` (or a new run, ended here) and register it as a version.

        ``metric_history`` holds per-epoch values, logged with their index as the step.
        ``artifacts`` are extra files (plots) stored at the run's root.
        """
        _check_name(name)
        check_onnx_matches(onnx_path, metadata)
        for extra in artifacts or []:
            if not extra.is_file():
                raise BadRequestError(f"artifact file not found: {extra}")
        chimp_tags = self._metadata_tags(metadata)
        owns_run = run_id is None
        if run_id is None:
            run_id = self.start_run(name, tags={**chimp_tags, **(tags or {})})
        try:
            self._log_run_contents(
                run_id, onnx_path, metadata, params, metrics, metric_history, artifacts, tags
            )
            self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in chimp_tags.items()])
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
        metadata: ModelMetadata,
        params: Mapping[str, Any] | None,
        metrics: Mapping[str, float] | None,
        metric_history: Mapping[str, list[float]] | None,
        artifacts: Sequence[Path] | None,
        tags: Mapping[str, str] | None,
    ) -> None:
        if params:
            self._log_params(run_id, params)
        now = _now_ms()
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
        if tags:
            self._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        # The ONNX file always lands as model/model.onnx, whatever it was called locally.
        with tempfile.TemporaryDirectory(prefix="chimp-model-") as staging:
            folder = Path(staging)
            shutil.copyfile(onnx_path, folder / ONNX_FILE)
            (folder / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
            self._client.log_artifacts(run_id, staging, MODEL_DIR)
        for extra in artifacts or []:
            self._client.log_artifact(run_id, str(extra))

    @staticmethod
    def _metadata_tags(metadata: ModelMetadata) -> dict[str, str]:
        tags = {TAG_METADATA: metadata.model_dump_json(), TAG_TASK: metadata.task}
        if metadata.dataset:
            tags[TAG_DATASET] = metadata.dataset
        if metadata.plugin:
            tags[TAG_PLUGIN] = metadata.plugin
        return tags

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

    # -- reading ---------------------------------------------------------------------------

    def _version_info(self, mv: ModelVersion, aliases: list[str]) -> ModelVersionInfo:
        tags = dict(mv.tags or {})
        raw = tags.pop(TAG_METADATA, None)
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
        )

    def _aliases_of(self, name: str) -> dict[str, str]:
        try:
            model = self._client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFoundError(f"model {name!r} is not registered") from exc
            raise
        return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}

    def _get(self, name: str, version: str, aliases: Mapping[str, str]) -> ModelVersionInfo:
        _check_version(version)
        try:
            mv = self._client.get_model_version(name, version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFoundError(f"model {name!r} has no version {version}") from exc
            raise
        return self._version_info(mv, [a for a, v in aliases.items() if v == version])

    @_mlflow_call
    def get_version(self, name: str, version: str) -> ModelVersionInfo:
        _check_name(name)
        return self._get(name, version, self._aliases_of(name))

    @_mlflow_call
    def resolve(
        self, name: str, *, alias: str | None = None, version: str | None = None
    ) -> ModelVersionInfo:
        """The version named by ``version`` or ``alias`` (``production`` when neither)."""
        if alias is not None and version is not None:
            raise BadRequestError("give an alias or a version, not both")
        _check_name(name)
        aliases = self._aliases_of(name)
        if version is None:
            alias = validate_alias(alias or PRODUCTION)
            if alias not in aliases:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            version = aliases[alias]
        return self._get(name, version, aliases)

    @_mlflow_call
    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (moving it if it pointed elsewhere)."""
        _check_name(name)
        validate_alias(alias)
        _check_version(version)
        self._get(name, version, {})  # a clear NotFoundError for an unknown model/version
        self._client.set_registered_model_alias(name, alias, version)

    @_mlflow_call
    def delete_alias(self, name: str, alias: str) -> None:
        _check_name(name)
        if alias not in self._aliases_of(name):
            raise NotFoundError(f"model {name!r} has no alias {alias!r}")
        self._client.delete_registered_model_alias(name, alias)

    @_mlflow_call
    def aliases(self, name: str) -> dict[str, str]:
        """``{alias: version}`` for a registered model."""
        _check_name(name)
        return self._aliases_of(name)

    @_mlflow_call
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

    @_mlflow_call
    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of a model, newest first, with its aliases and run metrics."""
        _check_name(name)
        aliases = self._aliases_of(name)
        found = self._client.search_model_versions(f"name='{name}'")
        return [
            self._version_info(mv, [a for a, v in aliases.items() if v == str(mv.version)])
            for mv in sorted(found, key=lambda mv: int(mv.version), reverse=True)
        ]

    @_mlflow_call
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
        info = self.get_version(name, version)
        if info.run_id is None:
            raise NotFoundError(f"model {name!r} version {version} has no run")
        return info.run_id

    @_mlflow_call
    def download_onnx(self, name: str, version: str, dest_dir: Path) -> Path:
        """Download the version's ONNX file into ``dest_dir`` and return its path."""
        return self.download_version_artifact(name, version, f"{MODEL_DIR}/{ONNX_FILE}", dest_dir)

    @_mlflow_call
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

    @_mlflow_call
    def download_version_artifact(self, name: str, version: str, path: str, dest_dir: Path) -> Path:
        """Download one file of the version's run (``path`` as listed) into ``dest_dir``."""
        relative = PurePosixPath(path)
        if not path or relative.is_absolute() or ".." in relative.parts:
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
        return Path(local)


_Method = Callable[Concatenate[ModelRegistry, P], R]


class _InThread(Generic[P, R]):
    """An async twin of a ``ModelRegistry`` method, run in a worker thread."""

    def __init__(self, method: _Method[P, R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _InThread[P, R]: ...
    @overload
    def __get__(
        self, obj: AsyncModelRegistry, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(
        self, obj: AsyncModelRegistry | None, owner: type[Any]
    ) -> _InThread[P, R] | Callable[P, Coroutine[Any, Any, R]]:
        if obj is None:
            return self
        method, registry, limiter = self._method, obj.sync, obj.limiter

        @functools.wraps(method)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = functools.partial(method, registry, *args, **kwargs)
            return await anyio.to_thread.run_sync(bound, limiter=limiter)

        return call


class AsyncModelRegistry:
    """``ModelRegistry`` for event loops: the same methods, each awaited in a worker thread.

    ``limiter`` bounds how many MLflow calls run at once (None: anyio's default limiter).
    """

    def __init__(
        self, registry: ModelRegistry, limiter: anyio.CapacityLimiter | None = None
    ) -> None:
        self.sync = registry
        self.limiter = limiter

    @property
    def tracking_uri(self) -> str:
        return self.sync.tracking_uri

    check = _InThread(ModelRegistry.check)
    start_run = _InThread(ModelRegistry.start_run)
    log_params = _InThread(ModelRegistry.log_params)
    log_metrics = _InThread(ModelRegistry.log_metrics)
    set_run_tags = _InThread(ModelRegistry.set_run_tags)
    log_artifacts = _InThread(ModelRegistry.log_artifacts)
    end_run = _InThread(ModelRegistry.end_run)
    log_model_version = _InThread(ModelRegistry.log_model_version)
    get_version = _InThread(ModelRegistry.get_version)
    resolve = _InThread(ModelRegistry.resolve)
    set_alias = _InThread(ModelRegistry.set_alias)
    delete_alias = _InThread(ModelRegistry.delete_alias)
    aliases = _InThread(ModelRegistry.aliases)
    list_models = _InThread(ModelRegistry.list_models)
    list_versions = _InThread(ModelRegistry.list_versions)
    metric_history = _InThread(ModelRegistry.metric_history)
    download_onnx = _InThread(ModelRegistry.download_onnx)
    list_version_artifacts = _InThread(ModelRegistry.list_version_artifacts)
    download_version_artifact = _InThread(ModelRegistry.download_version_artifact)
