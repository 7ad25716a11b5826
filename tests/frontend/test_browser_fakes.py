"""The pages in a real Chromium, against the in-memory fakes: the JS logic on its own.

The same flows against the real training and serving services are in test_browser_e2e.py.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect, sync_playwright

from chimp.frontend.config import FrontendSettings
from tests.frontend.browser import (
    BROWSER_TEST_MARKS,
    CHROMIUM,
    chromium_args,
    screenshot_path,
    serve,
)
from tests.frontend.fakes import ServingState, TrainingState, version
from tests.frontend.webcam import face_frame, write_y4m

pytestmark = BROWSER_TEST_MARKS


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    camera = write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", face_frame())
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera))
        yield launched
        launched.close()


@pytest.fixture
def web(
    make_app: Callable[[FrontendSettings], FastAPI],
    make_settings: Callable[..., FrontendSettings],
) -> Iterator[str]:
    settings = make_settings(calibration_seconds=0.3, calibration_frames=2, calibration_countdown=0)
    with serve(make_app(settings)) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


def test_live_page_without_a_model_offers_both_ways_forward(web: str, page: Page) -> None:
    page.goto(web + "/")
    expect(page.locator("body")).to_have_attribute("data-live-state", "no_model", timeout=15000)
    banner = page.locator("#banner")
    expect(banner.get_by_role("link", name="Calibrate to your face")).to_be_visible()
    expect(banner.get_by_role("link", name="upload a dataset and train")).to_be_visible()
    page.screenshot(path=screenshot_path("fakes-live-no-model"))


def test_live_page_draws_predictions_and_the_answering_version(
    web: str, page: Page, serving_state: ServingState
) -> None:
    serving_state.production = "3"
    page.goto(web + "/")
    expect(page.locator("#model-info")).to_have_text(
        "emotion-recognition v3 (production)", timeout=15000
    )
    expect(page.locator(".bar.top .name")).to_have_text("happy")
    expect(page.locator(".bar.top .pct")).to_have_text("70.0%")
    expect(page.locator(".bar")).to_have_count(7)
    frames = page.evaluate("window.chimpLive.frames")
    assert frames >= 1
    # The overlay has the box drawn on it: some pixels are no longer transparent.
    painted = page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
        return n; }""")
    assert painted > 100
    page.screenshot(path=screenshot_path("fakes-live"))


def test_refused_camera_is_explained(web: str, page: Page) -> None:
    page.add_init_script("""navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('denied', 'NotAllowedError'));""")
    page.goto(web + "/")
    expect(page.locator("#banner")).to_contain_text("Camera access was refused", timeout=10000)
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    page.screenshot(path=screenshot_path("fakes-live-camera-refused"))


def test_calibration_records_uploads_trains_and_returns_to_a_personal_model(
    web: str, page: Page, training_state: TrainingState, serving_state: ServingState
) -> None:
    serving_state.production = "1"

    def personal(run: dict[str, Any]) -> None:
        serving_state.personal[run["user_id"]] = "2"

    training_state.on_run.append(personal)
    page.goto(web + "/calibrate")
    start = page.get_by_role("button", name="Start recording")
    expect(start).to_be_enabled(timeout=10000)
    start.click()
    expect(page.locator("body")).to_have_attribute("data-calibration-phase", "recording")
    page.screenshot(path=screenshot_path("fakes-calibrate"))
    page.wait_for_url(re.compile(r".*/\?calibrated=1$"), timeout=60000)
    expect(page.locator("#model-info")).to_have_text(
        re.compile(r"emotion-recognition v2 \(your personal model\)"), timeout=15000
    )
    ((name, files),) = training_state.uploads
    assert name.startswith("calib-")
    assert len(files) == 14
    assert "train/happy/000.jpg" in files


def _zip_file(tmp_path: Path) -> Path:
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for label in ("happy", "sad"):
            zf.writestr(f"train/{label}/000.jpg", b"\xff\xd8jpeg")
    return path


def test_training_page_uploads_runs_and_lists_tasks(
    web: str, page: Page, training_state: TrainingState, tmp_path: Path
) -> None:
    page.goto(web + "/training")
    page.set_input_files("#dataset-file", str(_zip_file(tmp_path)))
    expect(page.locator("#dataset-name")).to_have_value("faces")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-status")).to_contain_text("2 files", timeout=10000)
    expect(page.locator("#datasets tbody tr[data-name=faces]")).to_be_visible()
    page.fill("#arg-epochs", "2")
    # The page says what the training service's gate will do with the new version.
    expect(page.locator("#promote-rule")).to_contain_text("beats production by 0.01 accuracy")
    page.get_by_label("Promote to production if it passes the evaluation gate").uncheck()
    expect(page.locator("#promote-rule")).to_contain_text("production does not move")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#tasks tbody tr[data-status=succeeded]")).to_have_count(1, timeout=10000)
    page.screenshot(path=screenshot_path("fakes-training"), full_page=True)
    assert training_state.runs[0]["arguments"] == {"epochs": 2}
    assert training_state.runs[0]["datasets"] == {"train": "faces"}
    assert training_state.runs[0]["promote"] is False


def test_models_page_shows_the_gates_reason_and_rolls_back(
    web: str, page: Page, training_state: TrainingState
) -> None:
    reason = "accuracy 0.41 vs 0.73 on held-out data of version 2: 0.32 worse"
    rejected = {
        "model": "emotion-recognition", "verdict": "rejected", "reason": reason,
        "candidate_version": "3", "baseline_version": "2",
        "metrics": {"accuracy": {"metric": "accuracy", "candidate": 0.41, "baseline": 0.73}},
        "evaluation": {"name": "held-out data of version 2", "content_hash": "ab" * 32,
                       "images": 120},
        "policy": {"metric": "accuracy", "min_value": None, "min_improvement": 0.01,
                   "min_label_recall": None, "evaluation_dataset": None},
        "thresholds": {"min_improvement": 0.01}, "task_id": "t", "at": "2026-11-30T06:00:00Z",
    }  # fmt: skip
    training_state.versions = [
        version("1"),
        version("2", "production"),
        version("3", "staging", decision=rejected),
        version("4", user="ann"),
    ]
    page.goto(web + "/models")
    v3 = page.locator(".version[data-version='3']")
    expect(v3.locator(".decision .reason")).to_have_text(reason, timeout=10000)
    expect(v3.locator(".decision")).to_have_attribute("data-verdict", "rejected")
    expect(v3.locator(".decision td").nth(1)).to_have_text("0.410")
    expect(v3.locator(".decision td").nth(2)).to_have_text("0.730")
    # A personal version is told apart and cannot be promoted in one click.
    v4 = page.locator(".version[data-version='4']")
    expect(v4).to_have_attribute("data-kind", "personal")
    page.once("dialog", lambda dialog: dialog.dismiss())
    v4.get_by_role("button", name="Force personal version into production…").click()
    expect(page.locator("#banner")).to_contain_text("Nothing changed", timeout=10000)
    assert training_state.history == []

    page.locator(".version[data-version='1']").get_by_role(
        "button", name="Promote to production"
    ).click()
    expect(page.locator("[data-alias=production]")).to_have_attribute(
        "data-version", "1", timeout=10000
    )
    expect(page.locator(".timeline li[data-kind=forced]")).to_have_count(1, timeout=10000)
    page.screenshot(path=screenshot_path("fakes-models"), full_page=True)
    page.get_by_role("button", name="Roll back production").click()
    expect(page.locator("[data-alias=production]")).to_have_attribute(
        "data-version", "2", timeout=10000
    )
    expect(page.locator(".timeline li").first).to_have_attribute("data-kind", "rollback")
