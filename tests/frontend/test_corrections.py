"""Corrections from the live socket, and /api/me, against the REAL training API.

Serving is the fake (it answers every frame with one face at a known box), training is the real
API (real Redis, a real ``mlflow server`` holding the answering version, the local datastore).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import redis
from pydantic import SecretStr

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings
from chimp.shared.registry import ModelRegistry
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from chimp.shared.settings import AuthConfig, DatastoreConfig, MlflowConfig
from chimp.training.app import create_app as create_training_app
from chimp.training.config import TrainingConfig, TrainingSettings
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.frontend.browser import serve
from tests.frontend.fakes import EMOTIONS, ServingState, fake_serving
from tests.frontend.testclient import TestClient
from tests.frontend.webcam import face_frame

TOKEN = "corrections-token"
SPEC = InputSpec(height=48, width=48, channels=1, color="gray")


def frame_jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", face_frame())
    assert ok
    return bytes(data.tobytes())


@pytest.fixture
def production(registry: ModelRegistry, model_name: str, tmp_path: Path) -> str:
    path = make_tiny_onnx(tmp_path / "m.onnx", EMOTIONS, SPEC)
    meta = ModelMetadata(task="face-classification", labels=EMOTIONS, input=SPEC)
    version = registry.log_model_version(model_name, path, meta).version
    registry.set_alias(model_name, "production", version)
    return version


@pytest.fixture
def training_settings(
    tmp_path: Path, mlflow_uri: str, redis_url: str, redis_prefix: str, model_name: str
) -> Iterator[TrainingSettings]:
    settings = TrainingSettings(
        _env_file=None,
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        model_name=model_name,
        datastore=DatastoreConfig(backend="local", local_path=tmp_path / "datastore"),
        mlflow=MlflowConfig(tracking_uri=mlflow_uri, experiment=redis_prefix),
        auth=AuthConfig(token=SecretStr(TOKEN)),
        training=TrainingConfig(
            queue_name=f"{redis_prefix}:queue", key_prefix=redis_prefix, feedback_threshold=4
        ),
    )
    yield settings
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{redis_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def serving_state(production: str) -> ServingState:
    return ServingState(production=production)


@pytest.fixture
def web_app(
    training_settings: TrainingSettings, serving_state: ServingState, model_name: str
) -> Iterator[Any]:
    with serve(create_training_app(training_settings)) as training_url:
        settings = FrontendSettings(
            model_name=model_name,
            auth={"token": SecretStr(TOKEN)},
            frontend=FrontendConfig(training_url=training_url, max_fps=60),
        )
        yield create_app(
            settings,
            serving_transport=httpx.ASGITransport(app=fake_serving(serving_state, model_name)),
        )


@pytest.fixture
def web(web_app: Any) -> Iterator[TestClient]:
    with TestClient(web_app) as client:
        client.get("/")  # the browser's id cookie
        yield client


def live_exchange(web: TestClient, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one frame, then each request; the answers in order."""
    answers: list[dict[str, Any]] = []
    with web.websocket_connect("/ws/live") as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_bytes(frame_jpeg())
        answers.append(ws.receive_json())
        for request in requests:
            ws.send_json(request)
            answers.append(ws.receive_json())
    return answers


def test_correcting_a_face_stores_the_crop_the_model_saw_with_servings_provenance(
    web: TestClient, training_settings: TrainingSettings, production: str, model_name: str
) -> None:
    prediction, answer = live_exchange(
        web, {"type": "correct", "request": 7, "frame": 1, "face": 0, "label": "neutral"}
    )
    assert prediction["type"] == "prediction"
    assert prediction["frame"] == 1
    assert answer["type"] == "correction"
    assert answer["request"] == 7
    assert answer["ok"] is True, answer
    receipt = answer["receipt"]
    assert receipt["corrections"] == 1
    assert receipt["message"] == "3 more and a personal model is trained for you."
    stored = receipt["correction"]
    # Provenance is serving's answer to that frame, not something the page claimed.
    assert (stored["model"], stored["version"], stored["predicted"]) == (
        model_name,
        production,
        "happy",
    )
    assert stored["confidence"] == pytest.approx(0.7)

    # The crop: the fake's box (200,100,180,180) of the frame, gray, at the model's 48x48.
    path = training_settings.datastore_path() / receipt["dataset"] / stored["image"]
    crop = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert crop is not None
    assert crop.shape == (48, 48)
    gray = cv2.cvtColor(face_frame(), cv2.COLOR_BGR2GRAY)[100:280, 200:380]
    expected = cv2.resize(gray, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(crop.astype(int) - expected.astype(int)).max() <= 12  # JPEG round trip

    me = web.get("/api/me").json()
    assert me["corrections"] == 1


def test_unknown_frames_faces_and_labels_are_refused_and_nothing_is_stored(
    web: TestClient,
) -> None:
    answers = live_exchange(
        web,
        {"type": "correct", "request": 1, "frame": 99, "face": 0, "label": "sad"},
        {"type": "correct", "request": 2, "frame": 1, "face": 3, "label": "sad"},
        {"type": "correct", "request": 3, "frame": 1, "face": 0, "label": "bored"},
    )
    errors = [a["error"] for a in answers[1:]]
    assert [a["ok"] for a in answers[1:]] == [False, False, False]
    assert "frame is gone" in errors[0]
    assert "no face number 3" in errors[1]
    assert "bored" in errors[2]
    assert web.get("/api/me").json()["corrections"] == 0


def test_a_person_sees_and_deletes_only_their_own_data(web: TestClient) -> None:
    def become(uid: str | None) -> str:
        """Switch the client to another browser (a fresh id when ``uid`` is None)."""
        web.cookies.clear()
        if uid is not None:
            web.cookies.set("chimp_uid", uid)
        web.get("/")
        return str(web.cookies["chimp_uid"])

    ann = become(None)
    (_, answer) = live_exchange(
        web, {"type": "correct", "request": 1, "frame": 1, "face": 0, "label": "sad"}
    )
    assert answer["ok"] is True
    bob = become(None)
    assert bob != ann
    assert web.get("/api/me").json()["corrections"] == 0  # ann's correction is not bob's
    (_, answer) = live_exchange(
        web, {"type": "correct", "request": 1, "frame": 1, "face": 0, "label": "fear"}
    )
    assert answer["receipt"]["corrections"] == 1

    become(ann)
    deleted = web.delete("/api/me")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["datasets"] == [f"feedback-{ann}"]
    assert web.get("/api/me").json()["corrections"] == 0
    become(bob)
    assert web.get("/api/me").json()["corrections"] == 1


def test_uncertain_frames_reach_the_review_queue_only_after_opting_in(
    web: TestClient, serving_state: ServingState
) -> None:
    assert web.get("/api/me").json()["review_uncertain"] is False
    # The fake's top score is 0.7: "uncertain" means below 0.8 for this test.
    web.app.state.settings.frontend.review_below = 0.8  # type: ignore[attr-defined]
    answers = live_exchange(web, {"type": "review", "enabled": True})
    assert answers[1] == {"type": "review-mode", "enabled": True}
    assert web.get("/api/me/review").json() == []  # the page said on, the person did not

    assert web.put("/api/me/settings", json={"review_uncertain": True}).status_code == 200
    with web.websocket_connect("/ws/live") as ws:
        ws.receive_json()
        ws.send_json({"type": "review", "enabled": True})
        ws.receive_json()
        ws.send_bytes(frame_jpeg())
        assert ws.receive_json()["type"] == "prediction"
        kept = ws.receive_json()
    assert kept["type"] == "review"
    assert kept["kept"] is True
    queue = web.get("/api/me/review").json()
    assert [item["predicted"] for item in queue] == ["happy"]
    image = web.get(f"/api/me/review/{queue[0]['id']}/image")
    assert image.headers["content-type"] == "image/png"
    labelled = web.post(f"/api/me/review/{queue[0]['id']}", json={"label": "sad"})
    assert labelled.status_code == 201, labelled.text
    assert web.get("/api/me").json()["corrections"] == 1
    assert web.get("/api/me/review").json() == []


def test_each_socket_knows_only_its_own_frames_and_me_is_always_the_session(
    web: TestClient,
) -> None:
    with web.websocket_connect("/ws/live") as first:
        first.receive_json()
        first.send_bytes(frame_jpeg())
        assert first.receive_json()["frame"] == 1
    # A new socket (another tab, or someone else) has no frame 1 until it sends one.
    with web.websocket_connect("/ws/live") as second:
        second.receive_json()
        second.send_json({"type": "correct", "request": 1, "frame": 1, "face": 0, "label": "sad"})
        refused = second.receive_json()
    assert refused["ok"] is False
    # There is no way to name another person: a user id in the query is ignored.
    other = uuid.uuid4().hex[:16]
    assert web.get(f"/api/me?user_id={other}").json()["user_id"] == web.cookies["chimp_uid"]
