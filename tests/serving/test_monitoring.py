"""Monitoring against real serving, Redis and MLflow: windows, drift, restarts, replicas."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from chimp.serving.config import ServingSettings
from chimp.shared.registry import PRODUCTION, ModelRegistry
from chimp.shared.schemas.monitoring import REFERENCE_TAG, PredictionReference
from tests.fixtures.onnx_models import make_tiny_onnx
from tests.fixtures.ports import free_port, wait_for_port
from tests.serving.conftest import EMOTIONS, FACE_SPEC, emotion_metadata, serve, serving_settings

SEED = 1


def model_file(folder: Path) -> Path:
    return make_tiny_onnx(folder / "model.onnx", EMOTIONS, FACE_SPEC, seed=SEED)


def register(
    registry: ModelRegistry,
    name: str,
    folder: Path,
    reference: PredictionReference | None,
    alias: str | None = None,
) -> str:
    tags = {REFERENCE_TAG: reference.model_dump_json()} if reference is not None else {}
    info = registry.log_model_version(name, model_file(folder), emotion_metadata(), tags=tags)
    if alias is not None:
        registry.set_alias(name, alias, info.version)
    return info.version


def own_reference(folder: Path, inputs: np.ndarray) -> PredictionReference:
    """What the model predicts on ``inputs``: its reference when those are its validation data."""
    session = ort.InferenceSession(str(model_file(folder)), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": inputs})
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = exp / exp.sum(axis=1, keepdims=True)
    return PredictionReference.from_predictions(
        EMOTIONS, scores.argmax(axis=1), scores.max(axis=1), split="test"
    )


def spread_reference() -> PredictionReference:
    """Every emotion equally often, confidences from 0.2 to 1."""
    predicted = np.repeat(np.arange(len(EMOTIONS)), 40)
    return PredictionReference.from_predictions(
        EMOTIONS, predicted, np.linspace(0.2, 1.0, len(predicted)), split="test"
    )


def settings_for(
    tmp_path: Path, mlflow_uri: str, name: str, redis_url: str, prefix: str, **monitoring: object
) -> ServingSettings:
    settings = serving_settings(
        tmp_path, mlflow_uri, name, monitoring={"key_prefix": prefix, **monitoring}
    )
    return settings.model_copy(update={"redis_url": redis_url})


def v2_body(batch: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "input", "shape": list(batch.shape), "datatype": "FP32",
             "data": batch.ravel().tolist()}
        ]
    }  # fmt: skip


async def infer(client: httpx.AsyncClient, name: str, version: str, batch: np.ndarray) -> None:
    response = await client.post(f"/v2/models/{name}/versions/{version}/infer", json=v2_body(batch))
    assert response.status_code == 200, response.text


def by_version(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["version"]: v for v in report["versions"]}


async def test_drift_ok_and_not_enough_data_against_each_versions_reference(
    registry: ModelRegistry,
    model_name: str,
    mlflow_uri: str,
    redis_url: str,
    redis_prefix: str,
    redis_client: object,
    tmp_path: Path,
    astronaut_jpeg: bytes,
) -> None:
    rng = np.random.default_rng(7)
    validation = rng.random((240, 1, 48, 48), dtype=np.float32)
    skewed_v = register(registry, model_name, tmp_path, spread_reference(), alias=PRODUCTION)
    own_v = register(registry, model_name, tmp_path, own_reference(tmp_path, validation))
    few_v = register(registry, model_name, tmp_path, spread_reference())
    bare_v = register(registry, model_name, tmp_path, None)
    settings = settings_for(tmp_path, mlflow_uri, model_name, redis_url, redis_prefix)

    async with serve(settings) as client:
        # All-black faces: the model answers the same emotion every time.
        for _ in range(10):
            await infer(client, model_name, skewed_v, np.zeros((30, 1, 48, 48), np.float32))
        # The validation images again, through v2 and the original system's endpoint.
        for start in range(0, 200, 40):
            await infer(client, model_name, own_v, validation[start : start + 40])
        legacy = await client.post(
            f"/model/{model_name}/infer",
            params={"stage": "production"},
            json={"inputs": validation[200:].tolist()},
        )
        assert legacy.status_code == 200
        await infer(client, model_name, few_v, validation[:5])
        await infer(client, model_name, bare_v, validation[:50])
        faces = await client.post(
            f"/models/{model_name}/predict-image",
            content=astronaut_jpeg,
            headers={"content-type": "image/jpeg"},
        )
        assert faces.status_code == 200
        response = await client.get(f"/monitoring/models/{model_name}")
        one = await client.get(f"/monitoring/models/{model_name}", params={"version": own_v})
        metrics = (await client.get("/metrics")).text

    assert response.status_code == 200, response.text
    report = response.json()
    versions = by_version(report)
    skewed = versions[skewed_v]
    # The legacy rows went to production (the skewed version), so 300 + 40 and one face.
    assert (skewed["count"], skewed["images"], skewed["faces_per_image"]) == (341, 1, 1.0)
    assert skewed["status"] == "drift"
    assert skewed["labels"]["test"] == "chi-squared"
    assert skewed["labels"]["p_value"] < 0.05
    assert skewed["labels"]["drift"]
    assert max(skewed["label_shares"].values()) > 0.8

    own = versions[own_v]
    assert (own["count"], own["status"]) == (200, "ok")
    assert own["labels"]["p_value"] > 0.05
    assert own["confidence"]["p_value"] > 0.05
    assert (versions[few_v]["count"], versions[few_v]["status"]) == (5, "not enough data")
    bare = versions[bare_v]
    assert (bare["count"], bare["status"], bare["reference"]) == (50, "no reference", None)
    assert "without a validation reference" in bare["reason"]

    total = sum(point["count"] for point in report["series"])
    assert total == 341 + 200 + 5 + 50
    assert report["labels"] == EMOTIONS
    busy = [p for p in report["series"] if p["count"]]
    assert all(abs(sum(p["label_shares"].values()) - 1) < 1e-9 for p in busy)
    assert all(0 < p["mean_confidence"] <= 1 for p in busy)
    assert [v["version"] for v in one.json()["versions"]] == [own_v]

    assert (
        f'chimp_serving_prediction_confidence_count{{model="{model_name}",version="{own_v}"}} 200.0'
        in metrics
    )
    assert f'chimp_serving_drift{{model="{model_name}",version="{skewed_v}"}} 1.0' in metrics
    assert f'chimp_serving_drift{{model="{model_name}",version="{own_v}"}} 0.0' in metrics


async def test_windows_survive_a_serving_restart(
    registry: ModelRegistry,
    model_name: str,
    mlflow_uri: str,
    redis_url: str,
    redis_prefix: str,
    redis_client: object,
    tmp_path: Path,
    astronaut_jpeg: bytes,
) -> None:
    version = register(registry, model_name, tmp_path, spread_reference(), alias=PRODUCTION)
    settings = settings_for(tmp_path, mlflow_uri, model_name, redis_url, redis_prefix)
    async with serve(settings) as client:
        for _ in range(3):
            answer = await client.post(
                f"/models/{model_name}/predict-image",
                content=astronaut_jpeg,
                headers={"content-type": "image/jpeg"},
            )
            assert len(answer.json()["faces"]) == 1
    # Shut down before its periodic flush: what it counted was written on the way out.
    async with serve(settings) as client:
        report = (await client.get(f"/monitoring/models/{model_name}")).json()

    (only,) = report["versions"]
    assert (only["version"], only["count"], only["images"]) == (version, 3, 3)
    assert only["status"] == "not enough data"


async def test_bad_periods_get_a_clear_400(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, redis_url: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, mlflow_uri, model_name, redis_url, "unused")
    async with serve(settings) as client:
        path = f"/monitoring/models/{model_name}"
        backwards = await client.get(
            path, params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
        )
        odd = await client.get(path, params={"window": 90})
        tiny = await client.get(
            path,
            params={"window": 60, "from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        )
        empty = await client.get(path)

    assert (backwards.status_code, backwards.json()["error"]) == (400, "from must be before to")
    assert odd.status_code == 400
    assert "multiple of the recording window (60 s)" in odd.json()["error"]
    assert tiny.status_code == 400
    assert "more than 2000 points" in tiny.json()["error"]
    assert empty.status_code == 200
    assert empty.json()["versions"] == []


async def test_serving_answers_while_redis_is_down(
    registry: ModelRegistry, model_name: str, mlflow_uri: str, tmp_path: Path
) -> None:
    register(registry, model_name, tmp_path, spread_reference(), alias=PRODUCTION)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_for(
        tmp_path, mlflow_uri, model_name, nowhere, "down", flush_interval_s=0.05
    )
    async with serve(settings) as client:
        answers = [
            await client.post(
                f"/v2/models/{model_name}/infer", json=v2_body(np.zeros((1, 1, 48, 48), np.float32))
            )
            for _ in range(5)
        ]
        await asyncio.sleep(0.2)  # a few failed flushes in between
        report = await client.get(f"/monitoring/models/{model_name}")

    assert [a.status_code for a in answers] == [200] * 5
    assert report.status_code == 503
    assert "Redis is not reachable" in report.json()["error"]


# -- two serving processes at once -------------------------------------------------------------


@pytest.fixture
def two_servers(
    registry: ModelRegistry,
    model_name: str,
    mlflow_uri: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> Iterator[list[tuple[int, subprocess.Popen[bytes]]]]:
    register(registry, model_name, tmp_path, spread_reference(), alias=PRODUCTION)
    servers = []
    logs = []
    for index in range(2):
        port = free_port()
        env = {
            **os.environ,
            "CHIMP_DATA_DIR": str(tmp_path / f"data-{index}"),
            "CHIMP_MODEL_NAME": model_name,
            "CHIMP_REDIS_URL": redis_url,
            "CHIMP_MLFLOW__TRACKING_URI": mlflow_uri,
            "CHIMP_SERVING__PORT": str(port),
            "CHIMP_SERVING__MONITORING__KEY_PREFIX": redis_prefix,
            # Flush often, so the two processes write into the same windows at the same time.
            "CHIMP_SERVING__MONITORING__FLUSH_INTERVAL_S": "0.02",
        }
        log = (tmp_path / f"serving-{index}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "chimp.serving"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        servers.append((port, proc))
    try:
        for port, _ in servers:
            wait_for_port(port, timeout=180)  # two cold starts on a small, busy machine
        yield servers
    finally:
        for _, proc in servers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for log in logs:
            log.close()


async def _hammer(port: int, name: str, batches: list[np.ndarray]) -> Counter[str]:
    """Send every batch (16 at a time); the labels the answers name."""
    seen: Counter[str] = Counter()
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

        async def one(batch: np.ndarray) -> None:
            async with limit:
                response = await client.post(f"/v2/models/{name}/infer", json=v2_body(batch))
            assert response.status_code == 200, response.text
            rows = np.asarray(response.json()["outputs"][0]["data"]).reshape(len(batch), -1)
            seen.update(EMOTIONS[int(i)] for i in rows.argmax(axis=1))

        await asyncio.gather(*(one(b) for b in batches))
    return seen


async def test_two_serving_processes_add_up_exactly(
    two_servers: list[tuple[int, subprocess.Popen[bytes]]],
    model_name: str,
    mlflow_uri: str,
    redis_url: str,
    redis_prefix: str,
    redis_client: object,
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(11)
    work = [
        [rng.random((int(rng.integers(1, 4)), 1, 48, 48), dtype=np.float32) for _ in range(150)]
        for _ in two_servers
    ]
    async with httpx.AsyncClient() as probe:
        for port, _ in two_servers:
            for _ in range(1800):
                if (await probe.get(f"http://127.0.0.1:{port}/health/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
    answered = await asyncio.gather(
        *(
            _hammer(port, model_name, batches)
            for (port, _), batches in zip(two_servers, work, strict=True)
        )
    )
    for _, proc in two_servers:
        proc.send_signal(signal.SIGTERM)
    for _, proc in two_servers:
        # uvicorn shuts down cleanly, then re-raises the signal it caught.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)

    settings = settings_for(tmp_path, mlflow_uri, model_name, redis_url, redis_prefix)
    async with serve(settings) as client:
        report = (await client.get(f"/monitoring/models/{model_name}")).json()

    expected = answered[0] + answered[1]
    rows = sum(len(b) for batches in work for b in batches)
    (version,) = report["versions"]
    assert version["count"] == rows == sum(expected.values())
    recorded: Counter[str] = Counter()
    for point in report["series"]:  # the run may span several windows
        recorded.update(point["label_counts"])
    assert recorded == expected
