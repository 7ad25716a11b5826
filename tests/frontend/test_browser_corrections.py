"""In Chromium with the fake webcam, against the REAL training and serving APIs: correct a
prediction on the live page and see the count change; delete my data from the page.

The production version is a small ONNX classifier registered straight into MLflow, so no
training is needed before the page can predict.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pydantic import SecretStr

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.models import InputSpec, ModelMetadata
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.frontend.browser import (
    BROWSER_TEST_MARKS,
    CHROMIUM,
    chromium_args,
    screenshot_path,
    serve,
)
from tests.frontend.stack import RealServices, real_services
from tests.frontend.webcam import face_frame, write_y4m
from tests.training.synthetic import EMOTIONS

pytestmark = BROWSER_TEST_MARKS

SPEC = InputSpec(height=48, width=48, channels=1, color="gray")


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str, redis_url: str
) -> Iterator[RealServices]:
    prefix = f"chimp-test-{uuid.uuid4().hex[:12]}"
    workdir = tmp_path_factory.mktemp("corrections")
    model_name = f"{prefix}-emotions"
    registry = ModelRegistry(mlflow_uri, experiment=prefix)
    path = make_tiny_onnx(workdir / "tiny.onnx", EMOTIONS, SPEC)
    meta = ModelMetadata(task="face-classification", labels=EMOTIONS, input=SPEC)
    version = registry.log_model_version(model_name, path, meta).version
    registry.set_alias(model_name, PRODUCTION, version)
    try:
        with real_services(
            workdir, mlflow_uri=mlflow_uri, redis_url=redis_url, prefix=prefix,
            model_name=model_name,
        ) as running:  # fmt: skip
            yield running
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def web(services: RealServices) -> Iterator[str]:
    settings = FrontendSettings(
        model_name=services.model_name,
        auth={"token": SecretStr(services.token)},
        frontend=FrontendConfig(
            training_url=services.training_url, serving_url=services.serving_url
        ),
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    camera: Path = write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", face_frame())
    with sync_playwright() as pw:
        browser: Browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera))
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def test_correct_a_prediction_by_click_and_by_key_and_see_the_count_change(
    web: str, page: Page
) -> None:
    page.goto(web + "/")
    expect(page.locator("body")).to_have_attribute("data-live-state", "ok", timeout=60000)
    expect(page.locator("#correction-count")).to_contain_text("Corrections: 0.", timeout=30000)
    button = page.locator('#correction-buttons button[data-label="neutral"]')
    expect(button).to_be_enabled(timeout=30000)
    button.click()
    expect(page.locator("#correction-status")).to_contain_text('Saved: "neutral"', timeout=30000)
    expect(page.locator("#correction-count")).to_have_text(
        "Corrections: 1. 9 more and a personal model is trained for you."
    )
    page.screenshot(path=screenshot_path("live-correction"))

    page.keyboard.press("6")  # the sixth emotion: sad
    expect(page.locator("#correction-status")).to_contain_text('Saved: "sad"', timeout=30000)
    expect(page.locator("#correction-count")).to_contain_text("Corrections: 2. 8 more")
    expect(page.locator("body")).to_have_attribute("data-corrections", "2")


def test_delete_my_data_from_the_page(web: str, page: Page) -> None:
    page.goto(web + "/")
    expect(page.locator("#correction-count")).to_contain_text("Corrections: 2.", timeout=30000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete my data").click()
    expect(page.locator("#correction-status")).to_contain_text("Deleted: 1 datasets", timeout=30000)
    expect(page.locator("#correction-count")).to_contain_text(
        re.compile(r"^Corrections: 0\. 10 more")
    )
    page.screenshot(path=screenshot_path("live-data-deleted"))
