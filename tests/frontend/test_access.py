"""Optional sign-in: off by default; when on, every page, API route and WebSocket needs it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from starlette.websockets import WebSocketDisconnect

from chimp.frontend.config import FrontendSettings
from chimp.frontend.passwords import hash_password
from tests.frontend.conftest import open_client
from tests.frontend.testclient import TestClient

PASSWORD = "s3cret-pw"


@pytest.fixture
def signed_in_app(
    make_app: Callable[[FrontendSettings], FastAPI],
    make_settings: Callable[..., FrontendSettings],
) -> FastAPI:
    return make_app(make_settings(users={"alice": hash_password(PASSWORD)}))


async def test_without_sign_in_every_browser_gets_its_own_user(
    make_app: Callable[[FrontendSettings], FastAPI],
    make_settings: Callable[..., FrontendSettings],
) -> None:
    app = make_app(make_settings())
    ids = []
    for _ in range(2):
        async for client in open_client(app):
            page = await client.get("/")
            assert page.status_code == 200
            ids.append(page.cookies["chimp_uid"])
            # The same browser keeps its id.
            assert (await client.get("/api/session")).json()["user_id"] == ids[-1]
    assert ids[0] != ids[1]


async def test_login_page_redirects_home_when_sign_in_is_off(client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    assert response.status_code == 303


@pytest.mark.parametrize("path", ["/", "/calibrate", "/training", "/models"])
async def test_pages_send_strangers_to_sign_in(signed_in_app: FastAPI, path: str) -> None:
    async for client in open_client(signed_in_app):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={path}"


@pytest.mark.parametrize("path", ["/api/session", "/api/plugins", "/api/tasks", "/openapi.json"])
async def test_api_refuses_strangers_with_json(signed_in_app: FastAPI, path: str) -> None:
    async for client in open_client(signed_in_app):
        response = await client.get(path)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"


async def test_probes_and_static_files_stay_open(signed_in_app: FastAPI) -> None:
    async for client in open_client(signed_in_app):
        assert (await client.get("/ping")).text == "pong"
        assert (await client.get("/static/app.css")).status_code == 200
        assert (await client.get("/login")).status_code == 200


async def test_wrong_password_is_refused(signed_in_app: FastAPI) -> None:
    async for client in open_client(signed_in_app):
        response = await client.post("/login", data={"username": "alice", "password": "nope"})
        assert response.status_code == 401
        assert "wrong password" in response.text
        assert "chimp_session" not in response.cookies
        unknown = await client.post("/login", data={"username": "bob", "password": PASSWORD})
        assert unknown.status_code == 401


async def test_signed_in_user_is_the_identity_until_sign_out(signed_in_app: FastAPI) -> None:
    async for client in open_client(signed_in_app):
        response = await client.post(
            "/login", data={"username": "alice", "password": PASSWORD, "next": "/models"}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/models"
        assert (await client.get("/models")).status_code == 200
        assert (await client.get("/api/session")).json()["user_id"] == "alice"
        await client.post("/logout")
        assert (await client.get("/api/session")).status_code == 401


async def test_sign_in_never_redirects_off_site(signed_in_app: FastAPI) -> None:
    async for client in open_client(signed_in_app):
        response = await client.post(
            "/login", data={"username": "alice", "password": PASSWORD, "next": "//evil.example"}
        )
        assert response.headers["location"] == "/"


def test_websocket_refuses_strangers_and_admits_the_signed_in(signed_in_app: FastAPI) -> None:
    with TestClient(signed_in_app) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws/live"):
            pass
        assert refused.value.code == 4401
        client.post("/login", data={"username": "alice", "password": PASSWORD})
        with client.websocket_connect("/ws/live") as ws:
            assert ws.receive_json()["user_id"] == "alice"
