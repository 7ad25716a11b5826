import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict

from chimp.shared.errors import (
    DependencyUnavailableError,
    NotFoundError,
    ValidationFailedError,
    install_error_handlers,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/missing")
    async def missing() -> None:
        raise NotFoundError("model 'x' not found")

    @app.get("/down")
    async def down() -> None:
        raise DependencyUnavailableError("redis is down")

    @app.get("/fields")
    async def fields() -> None:
        raise ValidationFailedError("bad", detail=[{"loc": ["arguments", "epochs"], "msg": "int"}])

    @app.post("/body")
    async def body(payload: Body) -> Body:
        return payload

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_chimp_errors_render_status_and_stable_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/missing")
    assert response.status_code == 404
    assert response.json() == {"error": "model 'x' not found", "code": "not_found", "detail": None}
    assert (await client.get("/down")).status_code == 503
    fields = (await client.get("/fields")).json()
    assert fields["detail"][0]["loc"] == ["arguments", "epochs"]


async def test_request_validation_names_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/body", json={"count": "many", "extra": 1})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    locs = {tuple(d["loc"]) for d in body["detail"]}
    assert ("body", "count") in locs
    assert ("body", "extra") in locs


async def test_unknown_route_and_crash_are_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    crash = await client.get("/boom")
    assert crash.status_code == 500
    assert crash.json() == {
        "error": "internal server error",
        "code": "internal_error",
        "detail": None,
    }


async def test_validation_error_of_the_whole_body_names_the_body() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/raw")
    async def raw() -> None:
        # What a route that parses its own body raises for JSON that is not an object.
        raise RequestValidationError([{"loc": (), "msg": "Input should be an object"}])

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/raw", content=b"[]")
    assert response.status_code == 422
    assert response.json()["error"] == "invalid request: body"
