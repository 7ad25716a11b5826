"""Small stand-ins for the training and serving services, speaking their HTTP contracts.

They keep state in memory so a test can set up "no model yet", "serving is down" or a finished
training task without MLflow or Redis. Flows against the real services live in the browser tests.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from chimp.shared.schemas.datasets import visible_to
from chimp.shared.schemas.models import ModelRef

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cf000000030101003c6f0a9b0000000049454e44ae426082"
)


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code, "detail": None}, status_code=status)


@dataclass
class ServingState:
    production: str | None = None
    personal: dict[str, str] = field(default_factory=dict)
    seen_users: list[str] = field(default_factory=list)
    seen_tokens: list[str | None] = field(default_factory=list)
    failing: bool = False


def fake_serving(state: ServingState, model_name: str = "emotion-recognition") -> FastAPI:
    app = FastAPI()

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/models")
    async def models() -> dict[str, Any]:
        aliases = {"production": state.production} if state.production else {}
        # "loaded" stays empty: nothing in the web app reads what the process has loaded.
        served = {"name": model_name, "aliases": aliases, "registry_aliases": aliases, "loaded": []}
        return {"models": [served], "registry": {"ok": True, "error": None}}

    @app.get("/monitoring/models/{name}")
    async def monitoring(name: str) -> Response:
        # Nothing recorded yet: an empty period, as a fresh serving answers.
        now = _now()
        return JSONResponse(
            {"model": name, "start": now, "end": now, "window_s": 60, "record_window_s": 60,
             "min_count": 30, "labels": [], "series": [], "versions": []}
        )  # fmt: skip

    @app.post("/models/{name}/predict-image")
    async def predict(name: str, request: Request, user: str | None = None) -> Response:
        state.seen_tokens.append(request.headers.get("authorization"))
        if user is not None:
            state.seen_users.append(user)
        if state.failing:
            return _error(500, "boom", "internal_error")
        body = await request.body()
        if not body.startswith(b"\xff\xd8"):
            return _error(422, "the image could not be decoded", "invalid_input")
        if user in state.personal:
            ref = ModelRef(name=name, version=state.personal[user], alias=f"user-{user}")
        elif state.production is not None:
            ref = ModelRef(name=name, version=state.production, alias="production")
        else:
            return _error(404, f"no version of '{name}' is in production", "not_found")
        scores = {e: (0.7 if e == "happy" else 0.05) for e in EMOTIONS}
        return JSONResponse(
            {
                "model": ref.model_dump(),
                "mode": "faces",
                "width": 640,
                "height": 480,
                "faces": [
                    {
                        "box": {"x": 200, "y": 100, "w": 180, "h": 180},
                        "scores": scores,
                        "label": "happy",
                        "score": 0.7,
                    }
                ],
            }
        )

    return app


@dataclass
class TrainingState:
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    seen_tokens: list[str | None] = field(default_factory=list)
    uploads: list[tuple[str, list[str]]] = field(default_factory=list)
    on_run: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    champions: list[str] = field(default_factory=list)  # production's rollback stack


PLUGIN = {
    "name": "emotion_recognition",
    "version": "1.0",
    "description": "CNN on face crops",
    "arguments": [
        {
            "name": "epochs",
            "type": "int",
            "description": "passes",
            "optional": True,
            "default": 5,
            "choices": None,
            "ge": 1,
        },
        {
            "name": "learning_rate",
            "type": "float",
            "description": "step size",
            "optional": True,
            "default": None,
            "choices": None,
            "gt": 0,
        },
    ],
    "datasets": [{"name": "train", "description": "labelled faces", "optional": False}],
    "model_return_type": "onnx",
    "argument_schema": {
        "type": "object",
        "properties": {
            "epochs": {
                "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                "default": 5,
            },
            "learning_rate": {
                "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}],
                "default": None,
            },
        },
    },
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def fake_training(state: TrainingState, model_name: str = "emotion-recognition") -> FastAPI:
    app = FastAPI()

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/plugins")
    async def plugins() -> list[dict[str, Any]]:
        return [PLUGIN]

    @app.get("/datasets")
    async def datasets(user_id: str | None = None) -> list[dict[str, Any]]:
        listed = list(state.datasets.values())
        return [d for d in listed if user_id is None or visible_to(d["name"], user_id)]

    @app.post("/datasets", status_code=201)
    async def upload(
        request: Request,
        file: Annotated[UploadFile, File()],
        dataset_name: Annotated[str, Form()],
    ) -> Response:
        state.seen_tokens.append(request.headers.get("authorization"))
        data = await file.read()
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return _error(422, "the upload is not a zip file", "invalid_input")
        state.uploads.append((dataset_name, names))
        info = {
            "name": dataset_name,
            "files": len(names),
            "size_bytes": len(data),
            "created_at": _now(),
        }
        state.datasets[dataset_name] = info
        return JSONResponse(info, status_code=201)

    @app.post("/tasks/run/{plugin}", status_code=202)
    async def run(plugin: str, body: dict[str, Any]) -> Response:
        if plugin != PLUGIN["name"]:
            return _error(404, f"unknown plugin '{plugin}'", "not_found")
        epochs = body.get("arguments", {}).get("epochs")
        if epochs is not None and not isinstance(epochs, int):
            return JSONResponse(
                {
                    "error": "invalid arguments: epochs",
                    "code": "validation_error",
                    "detail": [
                        {"loc": ["arguments", "epochs"], "msg": "Input should be a valid integer"}
                    ],
                },
                status_code=422,
            )
        state.runs.append({"plugin": plugin, **body})
        for hook in state.on_run:
            hook(body)
        task_id = uuid.uuid4().hex
        task = {
            "task_id": task_id,
            "plugin": plugin,
            "status": "succeeded",
            "progress": 1.0,
            "message": "done",
            "arguments": body.get("arguments", {}),
            "datasets": body.get("datasets", {}),
            "user_id": body.get("user_id"),
            "result": None,
            "error": None,
            "created_at": _now(),
            "started_at": _now(),
            "finished_at": _now(),
        }
        state.tasks[task_id] = task
        return JSONResponse(task, status_code=202)

    @app.get("/tasks")
    async def tasks() -> list[dict[str, Any]]:
        return list(state.tasks.values())

    @app.get("/tasks/{task_id}")
    async def task(task_id: str) -> Response:
        if task_id not in state.tasks:
            return _error(404, f"unknown task '{task_id}'", "not_found")
        return JSONResponse(state.tasks[task_id])

    @app.post("/tasks/{task_id}/cancel")
    async def cancel(task_id: str) -> Response:
        found = state.tasks.get(task_id)
        if found is None:
            return _error(404, f"unknown task '{task_id}'", "not_found")
        if found["status"] in ("succeeded", "failed", "cancelled"):
            return _error(409, f"task '{task_id}' already {found['status']}", "conflict")
        found["status"] = "cancelled"
        return JSONResponse(found)

    @app.get("/models")
    async def models() -> list[dict[str, Any]]:
        aliases = {a: v["version"] for v in state.versions for a in v["aliases"]}
        return [{"name": model_name, "aliases": aliases}] if state.versions else []

    @app.get("/models/{name}/versions")
    async def versions(name: str) -> Response:
        if name != model_name:
            return _error(404, f"no model '{name}'", "not_found")
        return JSONResponse(state.versions)

    def move(alias: str, to: str, kind: str, actor: str) -> dict[str, Any] | None:
        target = next((v for v in state.versions if v["version"] == to), None)
        if target is None:
            return None
        before = None
        for v in state.versions:
            if alias in v["aliases"]:
                before = v["version"]
                v["aliases"].remove(alias)
        if alias == "production" and kind != "rollback":
            if not state.champions and before is not None:
                state.champions.append(before)
            state.champions.append(to)
        target["aliases"].append(alias)
        state.history.append(
            {"id": uuid.uuid4().hex, "model": model_name, "alias": alias, "from_version": before,
             "to_version": to, "kind": kind, "actor": actor, "reason": f"{kind} by {actor}",
             "decision": None, "task_id": None, "at": _now()}
        )  # fmt: skip
        return target

    def actor_of(request: Request) -> str:
        named = request.headers.get("x-chimp-actor")
        return f"user:{named}" if named else "token"

    @app.post("/models/{name}/aliases/{alias}")
    async def set_alias(name: str, alias: str, body: dict[str, str], request: Request) -> Response:
        kind = "forced" if alias == "production" else "manual"
        target = move(alias, body["version"], kind, actor_of(request))
        if target is None:
            return _error(404, f"no version {body['version']}", "not_found")
        return JSONResponse(target)

    @app.post("/models/{name}/rollback")
    async def rollback(name: str, request: Request) -> Response:
        if len(state.champions) < 2:
            return _error(409, "nothing to roll back to", "conflict")
        previous = state.champions.pop()
        move("production", state.champions[-1], "rollback", actor_of(request))
        return JSONResponse(
            {"alias": "production", "version": state.champions[-1], "previous": previous}
        )

    @app.get("/users/{user_id}")
    async def user(user_id: str) -> Response:
        # A person who has given nothing yet, as the real API describes them.
        return JSONResponse(
            {"user_id": user_id, "calibration_datasets": [], "corrections": 0,
             "pending_corrections": 0, "feedback_threshold": 10, "personal_model": None,
             "review_uncertain": False}
        )  # fmt: skip

    @app.get("/models/{name}/history")
    async def history(name: str, offset: int = 0, limit: int = 50) -> Response:
        entries = list(reversed(state.history))
        return JSONResponse(
            {"model": name, "entries": entries[offset : offset + limit],
             "total": len(entries), "offset": offset, "limit": limit}
        )  # fmt: skip

    @app.get("/models/{name}/policy")
    async def policy(name: str) -> Response:
        return JSONResponse(
            {"model": name, "metric": "accuracy", "min_value": None, "min_improvement": 0.01,
             "min_label_recall": None, "evaluation_dataset": None, "gated": True,
             "effective_min_value": 0.1529,
             "summary": "Promoted to production only if it beats production by 0.01 accuracy "
             "on production's recorded held-out data (images neither model trained on).",
             "updated_at": None, "updated_by": None}
        )  # fmt: skip

    @app.get("/models/{name}/versions/{version}/artifacts")
    async def artifacts(name: str, version: str) -> list[dict[str, Any]]:
        return [{"path": "model.onnx", "size": 10}, {"path": "confusion_matrix.png", "size": 70}]

    @app.get("/models/{name}/versions/{version}/artifacts/{path:path}")
    async def artifact(name: str, version: str, path: str) -> Response:
        if path != "confusion_matrix.png":
            return _error(404, f"no artifact '{path}'", "not_found")
        return Response(PNG_1PX, media_type="image/png")

    return app


def version(
    number: str, *aliases: str, user: str | None = None, decision: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": "emotion-recognition",
        "version": number,
        "aliases": list(aliases),
        "metrics": {"accuracy": 0.5},
        "tags": {"chimp.user_id": user} if user else {},
        "metadata": None,
        "created_at": _now(),
        "run_id": None,
        "user_id": user,
        "decision": decision,
    }
