"""End to end in Chromium against the REAL training API, training worker and serving API.

One stack per module (MLflow server, Redis, local datastore); the tests run in file order as a
user would: no model -> train one from an uploaded dataset -> live predictions -> calibrate to
a personal model -> promote and roll back. Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pydantic import SecretStr

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings
from tests.frontend.browser import (
    BROWSER_TEST_MARKS,
    CHROMIUM,
    chromium_args,
    screenshot_path,
    serve,
)
from tests.frontend.stack import RealServices, real_services
from tests.frontend.webcam import face_frame, write_y4m
from tests.training.synthetic import write_folder_dataset, zip_folder

pytestmark = BROWSER_TEST_MARKS

TRAIN_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str, redis_url: str
) -> Iterator[RealServices]:
    prefix = f"chimp-test-{uuid.uuid4().hex[:12]}"
    workdir = tmp_path_factory.mktemp("e2e")
    try:
        with real_services(
            workdir,
            mlflow_uri=mlflow_uri,
            redis_url=redis_url,
            prefix=prefix,
            model_name=f"{prefix}-emotions",
        ) as running:
            # Two epochs on 42 images may not beat chance by the gate's default margin; the
            # story needs its first version in production, so this model has no floor.
            policy = httpx.put(
                f"{running.training_url}/models/{running.model_name}/policy",
                json={"min_value": 0},
                headers={"authorization": f"Bearer {running.token}"},
                timeout=30,
            )
            assert policy.status_code == 200, policy.text
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
            training_url=services.training_url,
            serving_url=services.serving_url,
            calibration_seconds=0.6,
            calibration_frames=3,
            calibration_countdown=1,
            calibration_arguments={"mode": "calibrate", "epochs": 2, "batch_size": 16},
        ),
    )
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    camera = write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", face_frame())
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera))
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser) -> Iterator[Page]:
    # One browser profile for the whole story: the same user calibrates and sees their model.
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="module")
def dataset_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    folder = write_folder_dataset(root / "faces", per_label=6)
    return zip_folder(folder, root / "emotions-small.zip")


def test_live_page_says_no_model_yet(web: str, page: Page) -> None:
    page.goto(web + "/")
    expect(page.locator("body")).to_have_attribute("data-live-state", "no_model", timeout=30000)
    expect(page.locator("#banner")).to_contain_text("No model yet")
    page.screenshot(path=screenshot_path("e2e-live-no-model"))


def test_a_non_zip_upload_names_the_users_file(web: str, page: Page, tmp_path: Path) -> None:
    photo = tmp_path / "my holiday.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture, and not a zip")
    page.goto(web + "/training")
    page.set_input_files("#dataset-file", str(photo))
    page.fill("#dataset-name", "holiday")
    page.get_by_role("button", name="Upload").click()
    status = page.locator("#upload-status")
    expect(status).to_contain_text("my holiday.png is not a zip file", timeout=30000)
    expect(status).not_to_contain_text("upload.zip")
    expect(page.locator("#upload-progress")).to_be_hidden()
    page.screenshot(path=screenshot_path("e2e-upload-not-a-zip"), full_page=True)


def test_upload_a_dataset_and_watch_training_finish(
    web: str, page: Page, dataset_zip: Path
) -> None:
    page.goto(web + "/training")
    page.set_input_files("#dataset-file", str(dataset_zip))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("42 files", timeout=60000)
    page.select_option("#plugin", "emotion_recognition")
    page.fill("#arg-epochs", "2")
    page.fill("#arg-batch_size", "16")
    page.select_option("select[name=train]", "emotions-small")
    page.get_by_role("button", name="Run").click()
    row = page.locator("#tasks tbody tr").first
    expect(row.locator(".pill")).to_have_text(re.compile("queued|running|succeeded"), timeout=30000)
    page.screenshot(path=screenshot_path("e2e-training-running"), full_page=True)
    expect(row).to_have_attribute("data-status", "succeeded", timeout=TRAIN_TIMEOUT_MS)
    expect(row.locator("td").nth(3)).to_contain_text("100.0%")
    page.screenshot(path=screenshot_path("e2e-training"), full_page=True)


def test_live_page_boxes_the_face_with_percentages(web: str, page: Page) -> None:
    page.goto(web + "/")
    expect(page.locator("#model-info")).to_have_text(
        re.compile(r"v1 \(production\)$"), timeout=60000
    )
    expect(page.locator("body")).to_have_attribute("data-live-state", "ok", timeout=30000)
    expect(page.locator("#face-count")).to_have_text("1")
    expect(page.locator(".bar")).to_have_count(7)
    percentages = page.locator(".bar .pct").all_inner_texts()
    assert all(re.fullmatch(r"\d+\.\d%", p) for p in percentages), percentages
    total = sum(float(p.rstrip("%")) for p in percentages)
    assert 99.0 <= total <= 101.0
    box = page.evaluate("window.chimpLive.lastPrediction.faces[0].box")
    # The astronaut's face is in the upper middle of the 640x480 frame.
    assert 160 < box["x"] + box["w"] / 2 < 480
    assert box["y"] + box["h"] / 2 < 300
    page.screenshot(path=screenshot_path("e2e-live"))


def test_calibration_trains_and_switches_to_the_personal_model(web: str, page: Page) -> None:
    page.goto(web + "/calibrate")
    start = page.get_by_role("button", name="Start recording")
    expect(start).to_be_enabled(timeout=30000)
    start.click()
    expect(page.locator("#prompt")).to_contain_text("angry", timeout=10000)
    page.screenshot(path=screenshot_path("e2e-calibrate-recording"))
    expect(page.locator("body")).to_have_attribute(
        "data-calibration-phase", "training", timeout=60000
    )
    expect(page.locator(".emotions li.done")).to_have_count(7)
    page.screenshot(path=screenshot_path("e2e-calibrate-training"))
    page.wait_for_url(re.compile(r".*/\?calibrated=1$"), timeout=TRAIN_TIMEOUT_MS)
    expect(page.locator("#model-info")).to_have_text(
        re.compile(r"v2 \(your personal model\)$"), timeout=60000
    )
    alias = page.locator("body").get_attribute("data-model-alias")
    user = page.locator("#user-id").inner_text()
    assert alias == f"user-{user}"
    page.screenshot(path=screenshot_path("e2e-live-personal"))


def test_another_browser_still_gets_the_shared_model(web: str, browser: Browser) -> None:
    context = browser.new_context()
    try:
        other = context.new_page()
        other.goto(web + "/")
        expect(other.locator("#model-info")).to_have_text(
            re.compile(r"v1 \(production\)$"), timeout=60000
        )
    finally:
        context.close()


def test_promote_and_roll_back_on_the_models_page(
    web: str, page: Page, services: RealServices, dataset_zip: Path
) -> None:
    # A second shared version, trained without promotion, to promote and roll back from.
    headers = {"authorization": f"Bearer {services.token}"}
    started = httpx.post(
        f"{services.training_url}/tasks/run/emotion_recognition",
        json={
            "arguments": {"epochs": 1, "batch_size": 16},
            "datasets": {"train": "emotions-small"},
            "promote": False,
        },
        headers=headers,
        timeout=30,
    )
    assert started.status_code == 202, started.text
    page.goto(web + "/training")
    row = page.locator(f"#tasks tbody tr[data-task='{started.json()['task_id']}']")
    expect(row).to_have_attribute("data-status", "succeeded", timeout=TRAIN_TIMEOUT_MS)

    page.goto(web + "/models")
    # The registry may hold other models (other tests share the MLflow server): this one's card.
    card = page.locator(f".model[data-model='{services.model_name}']")
    production = card.locator("[data-alias=production]")
    expect(production).to_have_attribute("data-version", "1", timeout=30000)
    expect(card.locator(".version[data-version='1'] img")).to_have_count(2, timeout=30000)
    # The confusion matrix and the curves, fetched through the web app, really are pictures.
    page.wait_for_function(
        "name => [...document.querySelector(`.model[data-model='${name}']`)"
        ".querySelectorAll('.version img')].every(i => i.complete && i.naturalWidth)",
        arg=services.model_name,
        timeout=30000,
    )
    names = card.locator(".version[data-version='1'] img").evaluate_all(
        "imgs => imgs.map(i => i.alt).sort()"
    )
    assert names == ["confusion_matrix.png", "training_curves.png"]
    # The gate's verdict on v3 and its reason, as training recorded them.
    decision = httpx.get(
        f"{services.training_url}/models/{services.model_name}/versions/3",
        headers=headers,
        timeout=30,
    ).json()["decision"]
    assert decision["verdict"] == "rejected"
    v3 = card.locator(".version[data-version='3']")
    expect(v3.locator(".decision")).to_have_attribute("data-verdict", "rejected")
    expect(v3.locator(".decision .reason")).to_have_text(decision["reason"])
    page.screenshot(path=screenshot_path("e2e-models"), full_page=True)
    card.locator(".version[data-version='1'] img[alt='training_curves.png']").click()
    expect(page.locator("#lightbox img")).to_be_visible()
    page.screenshot(path=screenshot_path("e2e-models-curves"))
    page.keyboard.press("Escape")
    card.locator(".version[data-version='3']").get_by_role(
        "button", name="Promote to production"
    ).click()
    expect(production).to_have_attribute("data-version", "3", timeout=30000)
    card.get_by_role("button", name="Roll back production").click()
    expect(page.locator("#banner")).to_contain_text("production: v3 → v1", timeout=30000)
    expect(production).to_have_attribute("data-version", "1", timeout=30000)
    expect(page.locator(".timeline li").first).to_have_attribute("data-kind", "rollback")
    page.screenshot(path=screenshot_path("e2e-models-rolled-back"), full_page=True)
