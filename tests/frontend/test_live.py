"""/ws/live: frames in, one clear message out per frame, whatever state serving is in."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI

from chimp.frontend.config import FrontendSettings
from tests.frontend.conftest import ADMIN_TOKEN
from tests.frontend.fakes import ServingState
from tests.frontend.testclient import TestClient

JPEG = b"\xff\xd8\xff\xe0 a frame"


@pytest.fixture
def web(
    make_app: Callable[[FrontendSettings], FastAPI],
    make_settings: Callable[..., FrontendSettings],
) -> Iterator[TestClient]:
    with TestClient(make_app(make_settings(max_fps=60))) as client:
        client.get("/")  # a browser opens the page first and gets its id cookie
        yield client


def _ask(web: TestClient, frame: bytes = JPEG) -> dict[str, object]:
    with web.websocket_connect("/ws/live") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello"
        ws.send_bytes(frame)
        reply: dict[str, object] = ws.receive_json()
        return reply


def test_no_model_in_production_says_how_to_get_one(web: TestClient) -> None:
    reply = _ask(web)
    assert reply["type"] == "status"
    assert reply["state"] == "no_model"
    assert "calibration" in str(reply["message"])


def test_predictions_name_the_version_that_answered(
    web: TestClient, serving_state: ServingState
) -> None:
    serving_state.production = "3"
    reply = _ask(web)
    assert reply["type"] == "prediction"
    assert reply["model"] == {"name": "emotion-recognition", "version": "3", "alias": "production"}
    faces = reply["faces"]
    assert isinstance(faces, list)
    assert faces[0]["label"] == "happy"
    assert len(faces[0]["scores"]) == 7
    assert serving_state.seen_tokens == [f"Bearer {ADMIN_TOKEN}"]


def test_each_browser_gets_its_own_personal_model(
    web: TestClient, serving_state: ServingState
) -> None:
    serving_state.production = "3"
    uid = web.cookies["chimp_uid"]
    serving_state.personal[uid] = "4"
    mine = _ask(web)
    assert mine["model"] == {"name": "emotion-recognition", "version": "4", "alias": f"user-{uid}"}
    web.cookies.clear()
    web.get("/")
    theirs = _ask(web)
    assert theirs["model"] == {"name": "emotion-recognition", "version": "3", "alias": "production"}
    assert serving_state.seen_users == [uid, web.cookies["chimp_uid"]]


def test_corrupt_frame_and_failing_serving_are_reported_and_the_socket_lives_on(
    web: TestClient, serving_state: ServingState
) -> None:
    serving_state.production = "1"
    with web.websocket_connect("/ws/live") as ws:
        ws.receive_json()
        ws.send_bytes(b"not a jpeg")
        assert ws.receive_json()["state"] == "bad_frame"
        ws.send_text("hello?")
        assert ws.receive_json()["state"] == "bad_frame"
        serving_state.failing = True
        ws.send_bytes(JPEG)
        failed = ws.receive_json()
        assert failed["state"] == "error"
        assert "serving service failed" in failed["message"]
        serving_state.failing = False
        ws.send_bytes(JPEG)
        assert ws.receive_json()["type"] == "prediction"


def test_serving_down_is_reported(
    make_settings: Callable[..., FrontendSettings],
) -> None:
    from chimp.frontend.app import create_app

    app = create_app(make_settings(serving_url="http://127.0.0.1:9"))
    with TestClient(app) as web:
        reply = _ask(web)
    assert reply["state"] == "serving_down"
    assert "not reachable" in str(reply["message"])


def test_oversized_frame_is_refused(
    make_app: Callable[[FrontendSettings], FastAPI],
    make_settings: Callable[..., FrontendSettings],
) -> None:
    with TestClient(make_app(make_settings(max_frame_bytes=16))) as web:
        reply = _ask(web, JPEG + b"x" * 32)
    assert reply["state"] == "bad_frame"
