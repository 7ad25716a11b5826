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
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

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
    expect(page.locator("#notice")).to_contain_text("Your personal model is ready")
    page.screenshot(path=screenshot_path("fakes-live-personal-ready"))
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


def test_run_form_refuses_values_outside_the_plugins_bounds(
    web: str, page: Page, training_state: TrainingState
) -> None:
    training_state.datasets["faces"] = {
        "name": "faces",
        "files": 2,
        "size_bytes": 9,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    page.goto(web + "/training")
    epochs = page.locator("#arg-epochs")
    expect(epochs).to_have_attribute("min", "1", timeout=10000)
    epochs.fill("-5")
    page.get_by_role("button", name="Run").click()
    assert epochs.evaluate("e => !e.validity.valid")
    assert "1" in epochs.evaluate("e => e.validationMessage")
    epochs.fill("2")
    rate = page.locator("#arg-learning_rate")
    rate.fill("0")
    page.get_by_role("button", name="Run").click()
    assert rate.evaluate("e => e.validationMessage") == "must be greater than 0"
    assert training_state.runs == []
    rate.fill("0.01")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#tasks tbody tr[data-status=succeeded]")).to_have_count(1, timeout=10000)
    assert training_state.runs[0]["arguments"] == {"epochs": 2, "learning_rate": 0.01}


# -- a phone-sized screen, and what the pages tell a new user ---------------------------------

PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    opened = context.new_page()
    yield opened
    context.close()


def _overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the screen (0 when nothing scrolls sideways)."""
    return int(
        page.evaluate(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - document.documentElement.clientWidth"
        )
    )


@pytest.mark.parametrize(
    ("path", "ready"),
    [
        ("/", "#bars .bar"),
        ("/calibrate", "#emotions li"),
        ("/training", "#run-form button"),
        ("/models", ".version[data-version='1'] img"),
    ],
)
def test_pages_fit_a_phone_screen(
    web: str,
    phone: Page,
    training_state: TrainingState,
    serving_state: ServingState,
    path: str,
    ready: str,
) -> None:
    serving_state.production = "1"
    training_state.versions = [version("1", "production"), version("2", "staging")]
    training_state.datasets["faces"] = {
        "name": "faces",
        "files": 2,
        "size_bytes": 9,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    training_state.tasks["t1"] = {
        "task_id": "0123456789abcdef", "plugin": "emotion_recognition", "status": "failed",
        "progress": 0.4, "message": "reading train images (56/140)",
        "error": "ValueError: something long went wrong while reading the images",
        "created_at": "2026-01-01T00:00:00+00:00", "started_at": None, "finished_at": None,
        "arguments": {}, "datasets": {}, "user_id": None, "result": None,
    }  # fmt: skip
    phone.goto(web + path)
    expect(phone.locator(ready).first).to_be_visible(timeout=15000)
    assert _overflow(phone) == 0, f"{path} scrolls sideways by {_overflow(phone)} px"
    user = phone.locator("#user-id")
    expect(user).to_be_visible()
    box = user.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]
    assert user.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # not clipped
    assert float(user.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 12
    name = path.strip("/") or "live"
    phone.screenshot(path=screenshot_path(f"phone-{name}"), full_page=True)


def test_no_model_is_said_once_and_no_round_trip_is_shown(web: str, page: Page) -> None:
    page.goto(web + "/")
    expect(page.locator("body")).to_have_attribute("data-live-state", "no_model", timeout=15000)
    text = page.locator("#banner").inner_text()
    assert text.lower().count("no model") == 1, text
    expect(page.locator("#latency")).to_have_text("\u2013")
    expect(page.locator("#model-info")).to_have_text("\u2013")


def test_a_model_near_chance_is_flagged_beside_its_accuracy(
    web: str, page: Page, training_state: TrainingState, serving_state: ServingState
) -> None:
    weak = version("4", "production")
    weak["metrics"] = {"test_accuracy": 0.14, "test_loss": 1.95}
    training_state.versions = [weak]
    serving_state.production = "4"
    page.goto(web + "/")
    expect(page.locator("#model-info")).to_have_text(
        "emotion-recognition v4 (production)", timeout=15000
    )
    expect(page.locator("#model-accuracy")).to_have_text("· 14% held-out accuracy")
    expect(page.locator("#model-warning")).to_be_visible()
    expect(page.locator("#model-warning")).to_contain_text("chance is 14%")
    expect(page.locator("#latency")).to_have_text(re.compile(r"^\d+ ms$"))
    page.screenshot(path=screenshot_path("fakes-live-near-chance"))


def test_a_good_model_shows_its_accuracy_without_a_warning(
    web: str, page: Page, training_state: TrainingState, serving_state: ServingState
) -> None:
    good = version("5", "production")
    good["metrics"] = {"test_accuracy": 0.81}
    training_state.versions = [good]
    serving_state.production = "5"
    page.goto(web + "/")
    expect(page.locator("#model-accuracy")).to_have_text("· 81% held-out accuracy", timeout=15000)
    expect(page.locator("#model-warning")).to_be_hidden()


def test_upload_errors_name_the_file_reset_the_bar_and_say_the_name_rule(
    web: str, page: Page, training_state: TrainingState, tmp_path: Path
) -> None:
    page.goto(web + "/training")
    notes = tmp_path / "my notes.txt"
    notes.write_text("not a zip")
    page.set_input_files("#dataset-file", str(notes))
    expect(page.locator("#upload-status")).to_contain_text("“my notes.txt” is not a .zip")
    page.fill("#dataset-name", "notes")
    page.get_by_role("button", name="Upload").click()
    status = page.locator("#upload-status")
    expect(status).to_contain_text("Upload of “my notes.txt” failed", timeout=10000)
    expect(page.locator("#upload-progress")).to_be_hidden()
    assert page.locator("#upload-progress").evaluate("e => e.value") == 0

    name = page.locator("#dataset-name")
    name.fill("my faces!")
    page.get_by_role("button", name="Upload").click()
    message = name.evaluate("e => e.validationMessage")
    assert "letters, digits" in message, message
    assert training_state.uploads == []


def test_a_models_picture_opens_full_size_and_closes(
    web: str, page: Page, training_state: TrainingState
) -> None:
    training_state.versions = [version("1", "production")]
    page.goto(web + "/models")
    thumbnail = page.locator(".version[data-version='1'] .pictures img").first
    expect(thumbnail).to_be_visible(timeout=10000)
    thumbnail.click()
    opened = page.locator("#lightbox img")
    expect(opened).to_be_visible()
    assert opened.get_attribute("src") == thumbnail.evaluate("i => i.currentSrc")
    expect(page.locator("#lightbox figcaption")).to_contain_text("confusion_matrix.png")
    page.keyboard.press("Escape")
    expect(page.locator("#lightbox")).to_have_count(0)
    thumbnail.click()
    page.locator("#lightbox").click()
    expect(page.locator("#lightbox")).to_have_count(0)
