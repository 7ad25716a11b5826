"""Open Inference Protocol (KServe V2) REST endpoints.

Paths and JSON shapes follow the spec, so standard v2 clients work unchanged, with JSON tensors
or the binary tensor extension (see :mod:`chimp.serving.tensors`) for inputs and outputs alike,
e.g. ``tritonclient.http`` with its defaults. Any ONNX model is served from its graph; CHIMP
metadata, when the version has it, adds labels and the image input spec. Errors are
``{"error": "..."}`` plus CHIMP's ``code``/``detail``. A path without ``/versions/{v}`` means
the ``production`` alias.
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
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
from chimp.serving.routes.body import decode_content, read_limited
from chimp.serving.schemas import (
    ParameterValue,
    V2InferenceRequest,
    V2InferenceResponse,
    V2ModelMetadata,
    V2ServerMetadata,
    V2TensorMetadata,
)
from chimp.serving.tensors import (
    FROM_ONNX,
    BinaryBodyError,
    output_binary,
    output_json,
    split_binary,
    tensor_from_binary,
    tensor_from_input,
)
from chimp.shared.errors import (
    BadRequestError,
    DependencyUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
    error_responses,
)
from chimp.shared.model_fit import Graph, GraphTensor
from chimp.shared.onnx_model import check_tensor

PLATFORM = "onnxruntime_onnx"
# The binary tensor extension: the JSON request's size; bytes after it are tensor data.
HEADER_LENGTH = "Inference-Header-Content-Length"

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
        "description": "The JSON request; with the binary tensor extension, that JSON followed "
        "by the inputs' bytes, its size in the Inference-Header-Content-Length header.",
        "content": {
            "application/json": {
                "schema": {"$ref": _SCHEMAS_REF.format(model=V2InferenceRequest.__name__)}
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_INFER_ERRORS = error_responses(
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
    DependencyUnavailableError,
)


def _header_length(value: str, body_size: int) -> int:
    if not value.strip().isdigit():
        raise BinaryBodyError(
            f"{HEADER_LENGTH} must be the JSON header's size in bytes, got {value!r}"
        )
    length = int(value)
    if length == 0:
        raise BinaryBodyError(f"{HEADER_LENGTH} is 0: the body must start with the JSON request")
    if length > body_size:
        raise BinaryBodyError(
            f"{HEADER_LENGTH} says the JSON header is {length} bytes, but the whole body is "
            f"only {body_size}"
        )
    return length


def _refuse_unannounced_binary(body: bytes) -> None:
    """A JSON request followed by more bytes, without the header that says where JSON ends."""
    text = body.decode("utf-8", "replace")
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return
    if end < len(text.rstrip()):
        raise BinaryBodyError(
            f"the body has bytes after its JSON request: binary tensor data needs the "
            f"{HEADER_LENGTH} header giving the JSON's size"
        )


async def _read_request(
    request: Request, state: ServingState
) -> tuple[V2InferenceRequest, memoryview | None]:
    """The JSON request and, with the binary extension, the bytes after it (``None`` without)."""
    limit = state.settings.serving.max_infer_body_bytes
    body = await read_limited(request, limit)
    headers = request.headers
    encoding = headers.get("content-encoding")
    if encoding is not None:
        # Inflating up to the body limit is CPU work: off the event loop.
        body = await anyio.to_thread.run_sync(decode_content, body, encoding, limit)
    tail: memoryview | None = None
    declared = headers.get(HEADER_LENGTH)
    if declared is not None:
        length = _header_length(declared, len(body))
        tail = memoryview(body)[length:]
        body = body[:length]
    try:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            if tail is None:
                _refuse_unannounced_binary(body)
            # Not JSON orjson accepts: pydantic's parser gives the usual 422 with its location.
            return V2InferenceRequest.model_validate_json(body), tail
        return V2InferenceRequest.model_validate(parsed), tail
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _readiness_response(ok: bool, key: str) -> JSONResponse:
    # The spec: 200 means true, a 4xx means false.
    return JSONResponse(status_code=200 if ok else 400, content={key: ok})


def _tensor_metadata(tensor: GraphTensor) -> V2TensorMetadata:
    return V2TensorMetadata(
        name=tensor.name,
        datatype=FROM_ONNX.get(tensor.onnx_type, tensor.onnx_type),
        shape=[d if d is not None else -1 for d in tensor.shape],
    )


def _metadata(manager: ModelManager, resolved: Resolved) -> V2ModelMetadata:
    """The version's tensors from its graph, refined by its CHIMP metadata when it has some."""
    model = resolved.model
    session = model.runner.model
    meta = model.metadata
    inputs = [_tensor_metadata(t) for t in session.graph.inputs]
    outputs = [_tensor_metadata(t) for t in session.graph.outputs]
    parameters: dict[str, Any] = {
        "version": model.version,
        "alias": resolved.ref.alias,
        "chimp_metadata": meta is not None,
    }
    if meta is not None:
        spec = meta.input
        for tensor in inputs:
            if tensor.name == session.input_name:
                tensor.shape = [-1, spec.channels, spec.height, spec.width]
        for tensor in outputs:
            if tensor.name == session.output_name:
                tensor.shape = [-1, len(meta.labels)]
        parameters |= {
            "task": meta.task,
            "labels": meta.labels,
            "outputs_probabilities": meta.outputs_probabilities,
        }
    state = next((s for s in manager.states() if s.name == model.name), None)
    versions = set(state.registry_aliases.values()) if state else set()
    versions |= {m.version for m in state.loaded} if state else {model.version}
    return V2ModelMetadata(
        name=model.name,
        versions=sorted(versions, key=lambda v: (len(v), v)),
        platform=PLATFORM,
        inputs=inputs,
        outputs=outputs,
        parameters=parameters,
    )


def _flag(parameters: dict[str, ParameterValue] | None, key: str, default: bool = False) -> bool:
    if not parameters or key not in parameters:
        return default
    value = parameters[key]
    if type(value) is not bool:
        raise BadRequestError(f"parameter {key} must be true or false, got {value!r}")
    return value


def _refuse_unsupported(parameters: dict[str, ParameterValue] | None, what: str) -> None:
    if not parameters:
        return
    if "classification" in parameters:
        raise BadRequestError(
            f"{what}: the classification extension (class_count) is not supported; ask for "
            "the output tensor and rank its scores (labels: GET /v2/models/{name})"
        )
    if any(key.startswith("shared_memory") for key in parameters):
        raise BadRequestError(
            f"{what}: shared-memory tensors are not supported; send the data in the body"
        )


def _wanted_outputs(request: V2InferenceRequest, graph: Graph) -> list[tuple[str, bool]]:
    """``(output name, as binary)`` in answer order: the ones asked for, else every output."""
    default = _flag(request.parameters, "binary_data_output")
    if not request.outputs:
        return [(t.name, default) for t in graph.outputs]
    names = [t.name for t in graph.outputs]
    wanted: list[tuple[str, bool]] = []
    for output in request.outputs:
        if output.name not in names:
            raise TensorShapeError(
                f"unknown output '{output.name}'; this model's outputs: {', '.join(names)}"
            )
        if any(output.name == n for n, _ in wanted):
            raise TensorShapeError(f"output '{output.name}' is asked for twice")
        _refuse_unsupported(output.parameters, f"output '{output.name}'")
        wanted.append((output.name, _flag(output.parameters, "binary_data", default)))
    return wanted


def _feeds(request: V2InferenceRequest, tail: memoryview | None, graph: Graph) -> dict[str, Any]:
    known = {t.name: t for t in graph.inputs}
    feeds: dict[str, Any] = {}
    for item, raw in zip(request.inputs, split_binary(request.inputs, tail), strict=True):
        if item.name not in known:
            raise TensorShapeError(
                f"unknown input '{item.name}'; this model's inputs: {', '.join(known)}"
            )
        if item.name in feeds:
            raise TensorShapeError(f"input '{item.name}' is given twice")
        _refuse_unsupported(item.parameters, f"input '{item.name}'")
        takes = FROM_ONNX.get(known[item.name].onnx_type)
        if item.datatype != takes:
            raise TensorShapeError(
                f"input '{item.name}' has datatype {item.datatype}; this model takes {takes}"
            )
        feeds[item.name] = tensor_from_input(item) if raw is None else tensor_from_binary(item, raw)
    missing = [name for name in known if name not in feeds]
    if missing:
        raise TensorShapeError(
            f"missing input {', '.join(repr(n) for n in missing)}; this model takes "
            f"{', '.join(known)}"
        )
    return feeds


async def _infer(
    resolved: Resolved,
    request: V2InferenceRequest,
    recorder: PredictionRecorder,
    tail: memoryview | None = None,
) -> Response:
    """Run the request; the answer is a :class:`V2InferenceResponse` serialised with orjson,
    followed by the binary outputs' bytes when any were asked for as binary."""
    model = resolved.model
    session = model.runner.model
    graph = session.graph
    feeds = _feeds(request, tail, graph)
    wanted = _wanted_outputs(request, graph)
    if session.single:
        # One input, one output: the micro-batched path.
        batch = feeds[session.input_name]
        session.check_input(batch)
        results = [await model.runner.infer(batch)]
        meta = model.metadata
        if meta is not None and meta.labels:  # a classifier: its rows go to monitoring
            recorder.record_rows(
                model.name, model.version, meta.labels, results[0], meta.outputs_probabilities
            )
    else:
        inputs = {t.name: t for t in graph.inputs}
        for name, tensor in feeds.items():
            check_tensor(inputs[name], tensor, label=f"input '{name}'")
        results = await model.runner.infer_many(feeds, [name for name, _ in wanted])
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for (name, binary), result in zip(wanted, results, strict=True):
        if binary:
            entry, raw = output_binary(name, result)
            outputs.append(entry)
            chunks.append(raw)
        else:
            outputs.append(output_json(name, result))
    answer: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": outputs,
    }
    if request.id is not None:
        answer["id"] = request.id
    header = orjson.dumps(answer)
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *chunks]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


async def infer_endpoint(request: Request) -> Response:
    """``POST /v2/models/{name}[/versions/{version}]/infer``."""
    state = get_state(request)
    body, tail = await _read_request(request, state)
    params = request.path_params
    resolved = await state.manager.resolve(params["name"], Selector(version=params.get("version")))
    return await _infer(resolved, body, state.recorder, tail)


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
        return V2ServerMetadata(
            name="chimp-serving", version=__version__, extensions=["binary_tensor_data"]
        )

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
