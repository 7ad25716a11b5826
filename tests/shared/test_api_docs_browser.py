"""``/docs`` and ``/redoc`` of every app in Chromium with no network beyond this machine.

FastAPI's defaults load Swagger UI and ReDoc from CDNs; offline they are white pages. Every
request to anything but 127.0.0.1 is aborted here, and the rendered operations are looked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.frontend.browser import (
    BROWSER_TEST_MARKS,
    CHROMIUM,
    chromium_args,
    screenshot_path,
    serve,
)
from tests.frontend.webcam import face_frame, write_y4m
from tests.shared.test_api_docs import KNOWN_PATH, app_factories

pytestmark = BROWSER_TEST_MARKS


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    camera = write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", face_frame())
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera))
        yield launched
        launched.close()


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page whose requests to anything but 127.0.0.1 are aborted (and recorded)."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        url = route.request.url
        if re.match(r"^(http|ws)s?://127\.0\.0\.1[:/]", url) or url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_local)
    yield context.new_page(), blocked
    context.close()


@pytest.mark.parametrize("app_name", ["training", "serving", "frontend"])
def test_swagger_ui_and_redoc_render_operations_offline(
    tmp_path: Path,
    redis_url: str,
    mlflow_uri: str,
    offline_page: tuple[Page, list[str]],
    app_name: str,
) -> None:
    page, blocked = offline_page
    path = KNOWN_PATH[app_name]
    app = app_factories(tmp_path, redis_url, mlflow_uri)[app_name]()
    with serve(app) as url:
        page.goto(url + "/docs")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible(timeout=30000)
        expect(page.locator(f".opblock-summary-path[data-path='{path}']").first).to_be_visible()
        page.screenshot(path=screenshot_path(f"docs-{app_name}"))

        page.goto(url + "/redoc")
        redoc_operations = page.locator("[data-section-id^='operation/']")
        expect(redoc_operations.first).to_be_attached(timeout=30000)
        assert redoc_operations.count() >= 1
        expect(page.locator("body")).to_contain_text(path)
        page.screenshot(path=screenshot_path(f"redoc-{app_name}"))
    assert blocked == [], f"requests left the machine: {blocked}"
