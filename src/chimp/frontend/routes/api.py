"""``/api``: the browser's only door to the services.

Mostly thin passthroughs to training and serving (their contracts are the contract), plus what
only the web app knows: who the user is, and how a calibration run is started for them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from chimp.frontend.clients import passthrough, upstream_path
from chimp.frontend.dependencies import BackendsDep, ConfigDep, SettingsDep, UserIdDep
from chimp.frontend.schemas import (
    AliasRequest,
    CalibrationRequest,
    RunRequest,
    SessionInfo,
)
from chimp.shared.errors import (
    BadRequestError,
    ConflictError,
    DependencyUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
    error_responses,
)

router = APIRouter(prefix="/api", tags=["api"])

# A backend's 4xx reaches the browser unchanged: bad names are 400, unknown ones 404.
_UPSTREAM = error_responses(
    BadRequestError, DependencyUnavailableError, NotFoundError, ValidationFailedError
)


def calibration_prefix(user_id: str) -> str:
    return f"calib-{user_id}-"


@router.get("/session", operation_id="get_session")
async def get_session(settings: SettingsDep, user_id: UserIdDep) -> SessionInfo:
    cfg = settings.frontend
    return SessionInfo(
        user_id=user_id,
        sign_in_enabled=cfg.sign_in_enabled,
        model_name=settings.model_name,
        max_fps=cfg.max_fps,
        jpeg_quality=cfg.jpeg_quality,
        emotions=cfg.emotions,
        calibration_seconds=cfg.calibration_seconds,
        calibration_frames=cfg.calibration_frames,
        calibration_countdown=cfg.calibration_countdown,
        calibration_dataset_prefix=calibration_prefix(user_id),
    )


@router.get("/plugins", operation_id="list_plugins", responses=_UPSTREAM)
async def list_plugins(backends: BackendsDep) -> Response:
    return passthrough("training", await backends.training.request("GET", "/plugins"))


@router.get("/datasets", operation_id="list_datasets", responses=_UPSTREAM)
async def list_datasets(backends: BackendsDep) -> Response:
    return passthrough("training", await backends.training.request("GET", "/datasets"))


@router.post(
    "/datasets",
    operation_id="upload_dataset",
    responses=error_responses(
        BadRequestError,
        ConflictError,
        DependencyUnavailableError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        ValidationFailedError,
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "dataset_name"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "dataset_name": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def upload_dataset(request: Request, backends: BackendsDep, cfg: ConfigDep) -> Response:
    """Stream the multipart upload to training unchanged: nothing is buffered here."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaTypeError("upload a multipart form with 'file' and 'dataset_name'")
    headers = {"content-type": content_type}
    if "content-length" in request.headers:
        headers["content-length"] = request.headers["content-length"]
    response = await backends.training.request(
        "POST",
        "/datasets",
        content=request.stream(),
        headers=headers,
        timeout=cfg.upload_timeout_s,
    )
    return passthrough("training", response)


@router.post("/tasks/run/{plugin}", operation_id="run_plugin", status_code=202, responses=_UPSTREAM)
async def run_plugin(plugin: str, body: RunRequest, backends: BackendsDep) -> Response:
    payload: dict[str, Any] = body.model_dump()
    return passthrough(
        "training",
        await backends.training.request(
            "POST", upstream_path("tasks", "run", plugin), json=payload
        ),
    )


@router.post(
    "/calibration",
    operation_id="start_calibration",
    status_code=202,
    responses=error_responses(
        BadRequestError, DependencyUnavailableError, NotFoundError, ValidationFailedError
    ),
)
async def start_calibration(
    body: CalibrationRequest, backends: BackendsDep, cfg: ConfigDep, user_id: UserIdDep
) -> Response:
    """Train this user's personal model from their uploaded calibration frames."""
    if not body.dataset.startswith(calibration_prefix(user_id)):
        # Only ever train a user's model on their own recordings.
        raise BadRequestError(
            f"calibration dataset names start with '{calibration_prefix(user_id)}'"
        )
    payload = {
        "arguments": cfg.calibration_arguments,
        "datasets": {cfg.calibration_dataset_key: body.dataset},
        "user_id": user_id,
        "promote": False,
    }
    response = await backends.training.request(
        "POST", upstream_path("tasks", "run", cfg.calibration_plugin), json=payload
    )
    return passthrough("training", response)


@router.get("/tasks", operation_id="list_tasks", responses=_UPSTREAM)
async def list_tasks(backends: BackendsDep) -> Response:
    return passthrough("training", await backends.training.request("GET", "/tasks"))


@router.get("/tasks/{task_id}", operation_id="get_task", responses=_UPSTREAM)
async def get_task(task_id: str, backends: BackendsDep) -> Response:
    return passthrough(
        "training", await backends.training.request("GET", upstream_path("tasks", task_id))
    )


@router.post(
    "/tasks/{task_id}/cancel",
    operation_id="cancel_task",
    responses={**_UPSTREAM, **error_responses(ConflictError)},
)
async def cancel_task(task_id: str, backends: BackendsDep) -> Response:
    response = await backends.training.request("POST", upstream_path("tasks", task_id, "cancel"))
    return passthrough("training", response)


@router.get("/models", operation_id="list_models", responses=_UPSTREAM)
async def list_models(backends: BackendsDep) -> Response:
    return passthrough("training", await backends.training.request("GET", "/models"))


@router.get("/models/{name}/versions", operation_id="list_model_versions", responses=_UPSTREAM)
async def list_versions(name: str, backends: BackendsDep) -> Response:
    response = await backends.training.request("GET", upstream_path("models", name, "versions"))
    return passthrough("training", response)


def _as(user_id: str) -> dict[str, str]:
    """Training records who moved an alias: the signed-in user, not just "the web app"."""
    return {"x-chimp-actor": user_id}


@router.post("/models/{name}/aliases/{alias}", operation_id="set_model_alias", responses=_UPSTREAM)
async def set_alias(
    name: str, alias: str, body: AliasRequest, backends: BackendsDep, user_id: UserIdDep
) -> Response:
    """Force an alias onto a version (training records it as forced, with the user)."""
    response = await backends.training.request(
        "POST",
        upstream_path("models", name, "aliases", alias),
        json=body.model_dump(exclude_none=True),
        headers=_as(user_id),
    )
    return passthrough("training", response)


@router.post(
    "/models/{name}/rollback",
    operation_id="rollback_model",
    responses={**_UPSTREAM, **error_responses(ConflictError)},
)
async def rollback(name: str, backends: BackendsDep, user_id: UserIdDep) -> Response:
    """Move ``production`` back to the previous champion (training follows its history)."""
    response = await backends.training.request(
        "POST", upstream_path("models", name, "rollback"), headers=_as(user_id)
    )
    return passthrough("training", response)


@router.get("/models/{name}/history", operation_id="get_model_history", responses=_UPSTREAM)
async def get_history(name: str, request: Request, backends: BackendsDep) -> Response:
    """Every alias move of the model, newest first (paged like training's)."""
    response = await backends.training.request(
        "GET", upstream_path("models", name, "history"), params=dict(request.query_params)
    )
    return passthrough("training", response)


@router.get("/models/{name}/policy", operation_id="get_model_policy", responses=_UPSTREAM)
async def get_policy(name: str, backends: BackendsDep) -> Response:
    """How a new version earns production, with a sentence the training page shows."""
    response = await backends.training.request("GET", upstream_path("models", name, "policy"))
    return passthrough("training", response)


@router.get(
    "/models/{name}/versions/{version}/artifacts",
    operation_id="list_model_artifacts",
    responses=_UPSTREAM,
)
async def list_artifacts(name: str, version: str, backends: BackendsDep) -> Response:
    response = await backends.training.request(
        "GET", upstream_path("models", name, "versions", version, "artifacts")
    )
    return passthrough("training", response)


@router.get(
    "/models/{name}/versions/{version}/artifacts/{path:path}",
    operation_id="get_model_artifact",
    responses=_UPSTREAM,
)
async def get_artifact(name: str, version: str, path: str, backends: BackendsDep) -> Response:
    response = await backends.training.request(
        "GET", upstream_path("models", name, "versions", version, "artifacts", *path.split("/"))
    )
    answer = passthrough("training", response)
    if response.status_code == 200:
        # A version's artifacts never change once logged.
        answer.headers["cache-control"] = "private, max-age=3600"
    return answer


@router.get("/serving/models", operation_id="list_served_models", responses=_UPSTREAM)
async def list_served_models(backends: BackendsDep) -> Response:
    return passthrough("serving", await backends.serving.request("GET", "/models"))
