"""The models page's monitoring charts in Chromium, from predictions the REAL serving recorded.

Real training API, worker and serving as subprocesses, a real MLflow and Redis. Two versions
are registered with their validation references; serving answers v2 requests for both (the
first one's answers skewed to one emotion), production moves to the second through training's
API, and the page must show the charts and each version's drift badge. For a fuller picture in
the screenshot the hour before is filled with earlier windows through the same recorder.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import redis
import redis.asyncio as aioredis
from playwright.sync_api import Page, expect, sync_playwright
from pydantic import SecretStr

from chimp.frontend.app import create_app
from chimp.frontend.config import FrontendConfig, FrontendSettings
from chimp.serving.config import MonitoringConfig
from chimp.serving.recording import PredictionRecorder
from chimp.shared.registry import ModelRegistry
from chimp.shared.schemas.monitoring import REFERENCE_TAG, PredictionReference
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.frontend.browser import BROWSER_TEST_MARKS, CHROMIUM, chromium_args, serve
from tests.frontend.stack import RealServices, real_services
from tests.frontend.webcam import face_frame, write_y4m
from tests.serving.conftest import EMOTIONS, FACE_SPEC, emotion_metadata

pytestmark = BROWSER_TEST_MARKS

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "monitoring.png"


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"chimp-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str, redis_url: str, prefix: str
) -> Iterator[RealServices]:
    workdir = tmp_path_factory.mktemp("monitoring")
    try:
        with real_services(
            workdir,
            mlflow_uri=mlflow_uri,
            redis_url=redis_url,
            prefix=prefix,
            model_name=f"{prefix}-emotions",
        ) as running:
            yield running
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def reference_of(onnx_path: Path, inputs: np.ndarray) -> PredictionReference:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": inputs})
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = exp / exp.sum(axis=1, keepdims=True)
    return PredictionReference.from_predictions(
        EMOTIONS, scores.argmax(axis=1), scores.max(axis=1), split="test split"
    )


def v2(batch: np.ndarray) -> dict[str, Any]:
    tensor = {"name": "input", "shape": list(batch.shape), "datatype": "FP32"}
    return {"inputs": [{**tensor, "data": batch.ravel().tolist()}]}


async def backfill(redis_url: str, prefix: str, name: str, version: str, rows: np.ndarray) -> None:
    """Earlier windows of ``version``: ``rows`` spread over the last 50 minutes."""
    client = aioredis.Redis.from_url(redis_url)
    now = time.time()
    clock = [now]
    recorder = PredictionRecorder(
        client, MonitoringConfig(key_prefix=f"{prefix}:monitoring"), clock=lambda: clock[0]
    )
    for minute, chunk in zip(range(50, 5, -1), np.array_split(rows, 45), strict=True):
        clock[0] = now - 60 * minute
        recorder.record_rows(name, version, EMOTIONS, chunk, probabilities=False)
        recorder.collect()
    assert await recorder.flush()
    await client.aclose()


def test_models_page_charts_recorded_predictions_and_flags_drift(
    services: RealServices, mlflow_uri: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    name = services.model_name
    registry = ModelRegistry(mlflow_uri, experiment=prefix)
    onnx_path = make_tiny_onnx(tmp_path / "model.onnx", EMOTIONS, FACE_SPEC, seed=3)
    rng = np.random.default_rng(5)
    validation = rng.random((300, 1, 48, 48), dtype=np.float32)
    # Version 1 expects what it gives on bright noise; it will be shown dark frames.
    tags = {REFERENCE_TAG: reference_of(onnx_path, validation).model_dump_json()}
    first = registry.log_model_version(name, onnx_path, emotion_metadata(), tags=tags)
    second = registry.log_model_version(name, onnx_path, emotion_metadata(), tags=tags)
    headers = {"authorization": f"Bearer {services.token}"}
    with httpx.Client(timeout=30, headers=headers) as http:
        moved = http.post(
            f"{services.training_url}/models/{name}/aliases/production",
            json={"version": first.version},
        )
        assert moved.status_code == 200, moved.text
        logits = []
        for _ in range(8):
            dark = rng.random((20, 1, 48, 48), dtype=np.float32) * 0.05
            answer = http.post(
                f"{services.serving_url}/v2/models/{name}/versions/{first.version}/infer",
                json=v2(dark),
            )
            assert answer.status_code == 200, answer.text
            logits.append(np.asarray(answer.json()["outputs"][0]["data"]).reshape(20, -1))
        moved = http.post(
            f"{services.training_url}/models/{name}/aliases/production",
            json={"version": second.version},
        )
        assert moved.status_code == 200, moved.text
        for start in range(0, 200, 50):
            answer = http.post(
                f"{services.serving_url}/v2/models/{name}/versions/{second.version}/infer",
                json=v2(validation[start : start + 50]),
            )
            assert answer.status_code == 200, answer.text
        paths = http.get(f"{services.training_url}/openapi.json").json()["paths"]
    asyncio.run(backfill(redis_url, prefix, name, first.version, np.concatenate(logits * 4)))

    settings = FrontendSettings(
        model_name=name,
        auth={"token": SecretStr(services.token)},
        frontend=FrontendConfig(
            training_url=services.training_url, serving_url=services.serving_url
        ),
    )
    camera = write_y4m(tmp_path / "face.y4m", face_frame())
    with serve(create_app(settings)) as web, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera))
        page: Page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(web + "/models")
        card = page.locator(f".monitoring[data-model='{name}']")
        drifted = card.locator(f".drift-badge[data-version='{first.version}']")
        expect(drifted).to_have_attribute("data-status", "drift", timeout=30000)
        steady = card.locator(f".drift-badge[data-version='{second.version}']")
        expect(steady).to_have_attribute("data-status", "ok")
        # The statistics are on hover: the chi-squared test and its p-value, the KS test.
        tip = drifted.get_attribute("title") or ""
        assert "labels: chi-squared" in tip
        assert "confidence: KS D" in tip
        assert "200 predictions in the period" in (steady.get_attribute("title") or "")
        # Stacked shares: one rect per label present in each bucket with predictions.
        bars = card.locator("svg.shares rect[data-label]")
        assert bars.count() >= 46
        labels = set(bars.evaluate_all("rs => rs.map(r => r.dataset.label)"))
        assert labels <= set(EMOTIONS)
        assert len(labels) >= 2
        assert card.locator("svg.lines path.confidence").get_attribute("d")
        assert card.locator("svg.lines path.rate").get_attribute("d")
        if "/models/{name}/history" in paths:
            expect(card.locator("svg.shares g.marker")).to_have_count(2)
        else:
            expect(card.locator(".history-note")).to_contain_text("keeps no alias history")
        assert "null" not in card.inner_text()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        card.screenshot(path=str(SCREENSHOT))
        browser.close()
