"""Open Inference Protocol (KServe V2) REST endpoints.

Paths and JSON shapes follow the spec, so standard v2 clients work unchanged (JSON tensors;
the binary-tensor extension is not offered). Errors are ``{"error": "..."}`` plus CHIMP's
``code``/``detail``. A path without ``/versions/{v}`` means the ``production`` alias.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from chimp import __version__
from chimp.serving.dependencies import ManagerDep, ServingState, get_state
from chimp.serving.inference import TensorShapeError
from chimp.serving.model_manager import ModelManager, Resolved, Selector
from chimp.serving.recording import PredictionRecorder
from chimp.serving.routes.body import read_limited
from chimp.serving.schemas import (
    V2InferenceRequest,
    V2InferenceResponse,
    V2ModelMetadata,
    V2ServerMetadata,
    V2TensorMetadata,
)
from chimp.serving.tensors import FP32, tensor_from_input
from chimp.shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationFailedError,
    error_responses,
)

PLATFORM = "onnxruntime_onnx"

_MODEL_ERRORS = error_responses(BadRequestError, NotFoundError, DependencyUnavailableError)


# The infer body is read as bytes, parsed by orjson and validated as a dict (a 48x48 tensor is
# ~18 KB of JSON: orjson + dict validation measured ~25% cheaper than pydantic's own JSON
# parser), and the answer serialised once; on a small CNN this is a large share of a request.
# FastAPI does not know the body's models, so their schemas are added to the document's
# components by ``document_infer_request``, where this reference points.
_SCHEMAS_REF = "#/components/schemas/{model}"
_INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": _SCHEMAS_REF.format(model=V2InferenceRequest.__name__)}
            }
        },
    }
}
_INFER_ERRORS = error_responses(
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationFailedError,
    DependencyUnavailableError,
)


async def _read_request(request: Request, state: ServingState) -> V2InferenceRequest:
    body = await read_limited(request, state.settings.serving.max_infer_body_bytes)
    try:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            # Not JSON orjson accepts: pydantic's parser gives the usual 422 with its location.
            return V2InferenceRequest.model_validate_json(body)
        return V2InferenceRequest.model_validate(parsed)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _readiness_response(ok: bool, key: str) -> JSONResponse:
    # The spec: 200 means true, a 4xx means false.
    return JSONResponse(status_code=200 if ok else 400, content={key: ok})


def _metadata(manager: ModelManager, resolved: Resolved) -> V2ModelMetadata:
    model = resolved.model
    session = model.runner.model
    spec = model.metadata.input
    state = next((s for s in manager.states() if s.name == model.name), None)
    versions = set(state.registry_aliases.values()) if state else set()
    versions |= {m.version for m in state.loaded} if state else {model.version}
    return V2ModelMetadata(
        name=model.name,
        versions=sorted(versions, key=lambda v: (len(v), v)),
        platform=PLATFORM,
        inputs=[
            V2TensorMetadata(
                name=session.input_name,
                datatype=FP32,
                shape=[-1, spec.channels, spec.height, spec.width],
            )
        ],
        outputs=[
            V2TensorMetadata(
                name=session.output_name, datatype=FP32, shape=[-1, len(model.metadata.labels)]
            )
        ],
        parameters={
            "version": model.version,
            "alias": resolved.ref.alias,
            "task": model.metadata.task,
            "labels": model.metadata.labels,
            "outputs_probabilities": model.metadata.outputs_probabilities,
        },
    )


async def _infer(
    resolved: Resolved, request: V2InferenceRequest, recorder: PredictionRecorder
) -> Response:
    """Run the request; the answer is a :class:`V2InferenceResponse` serialised with orjson."""
    model = resolved.model
    session = model.runner.model
    if request.parameters and request.parameters.get("binary_data_output"):
        raise BadRequestError(
            "binary tensor data is not supported; ask for JSON outputs "
            "(tritonclient: binary_data=False)"
        )
    if len(request.inputs) != 1:
        raise TensorShapeError(
            f"this model takes exactly one input ('{session.input_name}'), "
            f"got {len(request.inputs)}"
        )
    item = request.inputs[0]
    if item.name != session.input_name:
        raise TensorShapeError(
            f"unknown input '{item.name}'; this model's input is '{session.input_name}'"
        )
    for wanted in request.outputs or []:
        if wanted.parameters and wanted.parameters.get("binary_data"):
            raise BadRequestError(
                "binary tensor data is not supported; ask for JSON outputs "
                "(tritonclient: binary_data=False)"
            )
        if wanted.name != session.output_name:
            raise TensorShapeError(
                f"unknown output '{wanted.name}'; this model's output is '{session.output_name}'"
            )
    batch = tensor_from_input(item)
    session.check_input(batch)
    result = await model.runner.infer(batch)
    meta = model.metadata
    recorder.record_rows(model.name, model.version, meta.labels, result, meta.outputs_probabilities)
    answer: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": [
            {
                "name": session.output_name,
                "shape": list(result.shape),
                "datatype": FP32,
                "data": result.ravel().tolist(),
            }
        ],
    }
    if request.id is not None:
        answer["id"] = request.id
    return Response(orjson.dumps(answer), media_type="application/json")


async def infer_endpoint(request: Request) -> Response:
    """``POST /v2/models/{name}[/versions/{version}]/infer``."""
    state = get_state(request)
    body = await _read_request(request, state)
    params = request.path_params
    resolved = await state.manager.resolve(params["name"], Selector(version=params.get("version")))
    return await _infer(resolved, body, state.recorder)


class _LeanRoute(Route):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self  # FastAPI's router leaves it unset; metrics label by its template
        await super().handle(scope, receive, send)


def lean_infer_routes(prefix: str = "/v2") -> list[BaseRoute]:
    """The infer paths as plain Starlette routes, for the app to match before everything else.

    Inference of a small model costs ~1 ms of server CPU, so framework work per request shows:
    served this way instead of through FastAPI's routing (dependency solving, parameter
    validation, per-route exit stacks and body-limit wrappers), v2 infer answered ~20% more
    requests/s at concurrency 16 on 2 cores (benchmarks/serving.py). The endpoint reads and
    checks its body itself; errors still go through the app's exception handlers, and the
    OpenAPI document comes from the identical routes of :func:`build_router`.
    """
    return [
        _LeanRoute(f"{prefix}{path}", infer_endpoint, methods=["POST"], include_in_schema=False)
        for path in ("/models/{name}/infer", "/models/{name}/versions/{version}/infer")
    ]


def _infer_openapi(path: str) -> dict[str, Any]:
    names = ["name", "version"] if "{version}" in path else ["name"]
    parameters = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]
    return {**_INFER_BODY, "parameters": parameters}


def _infer_request_schemas() -> dict[str, Any]:
    """The infer body's model and the models it uses, as OpenAPI component schemas."""
    schema = V2InferenceRequest.model_json_schema(ref_template=_SCHEMAS_REF)
    used: dict[str, Any] = schema.pop("$defs", {})
    return {**used, V2InferenceRequest.__name__: schema}


def document_infer_request(app: FastAPI) -> None:
    """Put the infer body's schemas into ``app``'s OpenAPI ``components/schemas``.

    The infer routes declare their body through ``openapi_extra`` (the endpoint parses it
    itself), so FastAPI's generator never sees those models; without this the document's
    references to them would not resolve.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()  # built on first use, then cached on the app
        if fresh:
            components = document.setdefault("components", {})
            schemas = {**components.get("schemas", {}), **_infer_request_schemas()}
            components["schemas"] = dict(sorted(schemas.items()))
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["open-inference-protocol"])

    # The infer paths are documented here and served by the plain routes of
    # ``lean_infer_routes``, which the app registers in front of this router.
    for path, operation_id in (
        ("/models/{name}/infer", "v2_infer"),
        ("/models/{name}/versions/{version}/infer", "v2_version_infer"),
    ):
        router.add_api_route(
            path,
            infer_endpoint,
            methods=["POST"],
            operation_id=operation_id,
            response_model=V2InferenceResponse,
            responses=_INFER_ERRORS,
            openapi_extra=_infer_openapi(path),
        )

    @router.get("/health/live", operation_id="v2_health_live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @router.get(
        "/health/ready",
        operation_id="v2_health_ready",
        responses={400: {"description": "not ready (the spec's 4xx for false)"}},
    )
    async def ready(manager: ManagerDep) -> JSONResponse:
        return _readiness_response(all(r is None for r in manager.readiness().values()), "ready")

    @router.get("", operation_id="v2_server_metadata")
    async def server_metadata() -> V2ServerMetadata:
        return V2ServerMetadata(name="chimp-serving", version=__version__, extensions=[])

    @router.get("/models/{name}", operation_id="v2_model_metadata", responses=_MODEL_ERRORS)
    async def model_metadata(name: str, manager: ManagerDep) -> V2ModelMetadata:
        return _metadata(manager, await manager.resolve(name, Selector()))

    @router.get(
        "/models/{name}/versions/{version}",
        operation_id="v2_model_version_metadata",
        responses=_MODEL_ERRORS,
    )
    async def model_version_metadata(
        name: str, version: str, manager: ManagerDep
    ) -> V2ModelMetadata:
        return _metadata(manager, await manager.resolve(name, Selector(version=version)))

    @router.get("/models/{name}/ready", operation_id="v2_model_ready", responses=_MODEL_ERRORS)
    async def model_ready(name: str, manager: ManagerDep) -> dict[str, Any]:
        resolved = await manager.resolve(name, Selector())
        return {"name": name, "version": resolved.model.version, "ready": True}

    @router.get(
        "/models/{name}/versions/{version}/ready",
        operation_id="v2_model_version_ready",
        responses=_MODEL_ERRORS,
    )
    async def model_version_ready(name: str, version: str, manager: ManagerDep) -> dict[str, Any]:
        resolved = await manager.resolve(name, Selector(version=version))
        return {"name": name, "version": resolved.model.version, "ready": True}

    return router
