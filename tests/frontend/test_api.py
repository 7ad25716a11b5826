"""The /api proxy: what the browser gets from training through the web app."""

from __future__ import annotations

import io
import zipfile

import httpx

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings
from tests.frontend.conftest import ADMIN_TOKEN, open_client
from tests.frontend.fakes import TrainingState, version


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            zf.writestr(name, b"\xff\xd8data")
    return buf.getvalue()


async def test_session_tells_the_page_its_user_and_limits(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/session")
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == response.cookies["chimp_uid"]
    assert body["sign_in_enabled"] is False
    assert len(body["emotions"]) == 7
    assert body["calibration_dataset_prefix"] == f"calib-{body['user_id']}-"


async def test_plugins_pass_through_with_their_argument_schema(client: httpx.AsyncClient) -> None:
    plugins = (await client.get("/api/plugins")).json()
    assert plugins[0]["name"] == "emotion_recognition"
    assert "epochs" in plugins[0]["argument_schema"]["properties"]


async def test_dataset_upload_streams_to_training_with_the_admin_token(
    client: httpx.AsyncClient, training_state: TrainingState
) -> None:
    data = _zip(["train/happy/000.jpg", "train/sad/000.jpg"])
    response = await client.post(
        "/api/datasets",
        files={"file": ("d.zip", data, "application/zip")},
        data={"dataset_name": "faces"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["files"] == 2
    assert training_state.uploads == [("faces", ["train/happy/000.jpg", "train/sad/000.jpg"])]
    assert training_state.seen_tokens == [f"Bearer {ADMIN_TOKEN}"]
    listed = (await client.get("/api/datasets")).json()
    assert [d["name"] for d in listed] == ["faces"]


async def test_upload_that_is_not_multipart_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/datasets", content=b"zip?", headers={"content-type": "application/zip"}
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_backend_validation_errors_reach_the_browser_unchanged(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/tasks/run/emotion_recognition",
        json={"arguments": {"epochs": "many"}, "datasets": {"train": "faces"}},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["detail"][0]["loc"] == ["arguments", "epochs"]


async def test_unknown_fields_in_a_run_request_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/tasks/run/emotion_recognition", json={"arguments": {}, "user_id": "someone-else"}
    )
    assert response.status_code == 422
    assert "user_id" in response.json()["error"]


async def test_calibration_trains_the_callers_model_on_their_dataset(
    client: httpx.AsyncClient, training_state: TrainingState
) -> None:
    session = (await client.get("/api/session")).json()
    dataset = session["calibration_dataset_prefix"] + "1"
    response = await client.post("/api/calibration", json={"dataset": dataset})
    assert response.status_code == 202, response.text
    task = response.json()
    assert training_state.runs == [
        {
            "plugin": "emotion_recognition",
            "arguments": {"mode": "calibrate", "epochs": 8},
            "datasets": {"train": dataset},
            "user_id": session["user_id"],
            "promote": False,
        }
    ]
    followed = (await client.get(f"/api/tasks/{task['task_id']}")).json()
    assert followed["status"] == "succeeded"


async def test_calibration_on_someone_elses_dataset_is_refused(
    client: httpx.AsyncClient, training_state: TrainingState
) -> None:
    response = await client.post("/api/calibration", json={"dataset": "calib-0123456789abcdef-1"})
    assert response.status_code == 400
    assert training_state.runs == []


async def test_cancel_a_finished_task_says_why(
    client: httpx.AsyncClient, training_state: TrainingState
) -> None:
    run = await client.post(
        "/api/tasks/run/emotion_recognition", json={"datasets": {"train": "faces"}}
    )
    response = await client.post(f"/api/tasks/{run.json()['task_id']}/cancel")
    assert response.status_code == 409
    assert "already succeeded" in response.json()["error"]


async def test_unknown_task_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tasks/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_promote_and_roll_back_production(
    client: httpx.AsyncClient, training_state: TrainingState
) -> None:
    training_state.versions = [
        version("1"),
        version("2", user="abc"),
        version("3", "production"),
    ]
    promoted = await client.post(
        "/api/models/emotion-recognition/aliases/production", json={"version": "1"}
    )
    assert promoted.status_code == 200
    assert "production" in promoted.json()["aliases"]
    await client.post("/api/models/emotion-recognition/aliases/production", json={"version": "3"})
    rolled = await client.post("/api/models/emotion-recognition/rollback")
    assert rolled.status_code == 200
    # Training decides the target from its history; the web app only asks.
    assert rolled.json() == {"alias": "production", "version": "1", "previous": "3"}
    models = (await client.get("/api/models")).json()
    assert models[0]["aliases"]["production"] == "1"
    # Training records who moved production: the signed-in user, through the web app.
    user = (await client.get("/api/session")).json()["user_id"]
    history = (await client.get("/api/models/emotion-recognition/history")).json()
    assert [(e["kind"], e["actor"]) for e in history["entries"]] == [
        ("rollback", f"user:{user}"), ("forced", f"user:{user}"), ("forced", f"user:{user}")
    ]  # fmt: skip


async def test_roll_back_with_nothing_older_is_a_conflict(
    client: httpx.AsyncClient, training_state: TrainingState
) -> None:
    training_state.versions = [version("1", "production")]
    response = await client.post("/api/models/emotion-recognition/rollback")
    assert response.status_code == 409
    assert "nothing to roll back" in response.json()["error"]


async def test_artifacts_are_listed_and_proxied_as_images(
    client: httpx.AsyncClient, training_state: TrainingState
) -> None:
    training_state.versions = [version("1", "production")]
    listed = (await client.get("/api/models/emotion-recognition/versions/1/artifacts")).json()
    assert "confusion_matrix.png" in [a["path"] for a in listed]
    image = await client.get(
        "/api/models/emotion-recognition/versions/1/artifacts/confusion_matrix.png"
    )
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


async def test_training_down_is_a_clear_503() -> None:
    settings = FrontendSettings(frontend=FrontendConfig(training_url="http://127.0.0.1:9"))
    async for client in open_client(create_app(settings)):
        response = await client.get("/api/tasks")
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == "dependency_unavailable"
        assert "training service is not reachable" in body["error"]
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["training"]["ok"] is False
