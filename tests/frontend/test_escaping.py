"""The web app escapes what it renders: templates autoescape, and the JS builds DOM nodes
with text (the ``el`` helper), never HTML strings."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from pydantic import SecretStr

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings

STATIC = Path(__file__).resolve().parents[2] / "src" / "chimp" / "frontend" / "static"
HTML_SINKS = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(")


def test_no_script_writes_html_strings_into_the_page() -> None:
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(STATIC.glob("*.js"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HTML_SINKS.search(line)
    ]
    assert offenders == []


async def test_hostile_text_sent_back_into_a_page_is_escaped() -> None:
    settings = FrontendSettings(
        _env_file=None, frontend=FrontendConfig(users={"ann": SecretStr("right")})
    )
    app = create_app(settings)
    hostile = '/"><script>alert(1)</script>'
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://web") as client,
    ):
        page = await client.post(
            "/login", data={"username": "<b>ann</b>", "password": "wrong", "next": hostile}
        )
    assert "<script>alert(1)</script>" not in page.text
    assert "<b>ann</b>" not in page.text
