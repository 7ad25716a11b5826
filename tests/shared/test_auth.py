import stat
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import SecretStr

from chimp.shared.auth import ensure_token_file, require_token
from chimp.shared.errors import install_error_handlers


def make_app(token: str | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    guard = require_token(SecretStr(token) if token else None)

    @app.post("/admin", dependencies=[Depends(guard)])
    async def admin() -> dict[str, bool]:
        return {"ok": True}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_token_required_when_configured() -> None:
    async with client_for(make_app("s3cret")) as client:
        missing = await client.post("/admin")
        assert missing.status_code == 401
        assert "bearer" in missing.json()["error"].lower()
        wrong = await client.post("/admin", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await client.post("/admin", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


async def test_open_when_no_token_configured() -> None:
    async with client_for(make_app(None)) as client:
        assert (await client.post("/admin")).status_code == 200


def test_token_file_is_generated_once_and_private(tmp_path: Path) -> None:
    first = ensure_token_file(tmp_path / "data")
    second = ensure_token_file(tmp_path / "data")
    assert first == second
    assert len(first) >= 32
    mode = (tmp_path / "data" / "admin-token").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize("header", ["Bearer", "Basic s3cret", ""])
async def test_malformed_authorization_is_rejected(header: str) -> None:
    async with client_for(make_app("s3cret")) as client:
        response = await client.post("/admin", headers={"Authorization": header})
        assert response.status_code == 401
