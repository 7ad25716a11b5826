"""Prediction windows in a real Redis: counted in memory, summed across recorders, kept for a
configured time, and held back (not lost) while Redis is down."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from chimp.serving.config import MonitoringConfig
from chimp.serving.recording import PredictionRecorder
from chimp.shared.schemas.models import FacePrediction
from tests.fixtures.ports import free_port, wait_for_port

LABELS = ["angry", "happy", "sad"]
T0 = 1_800_000_000  # a fixed clock, at the start of a minute


def face(label: str, score: float) -> FacePrediction:
    return FacePrediction(scores={label: score}, label=label, score=score)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def recorder(
    client: aioredis.Redis, prefix: str, clock: Clock, **config: object
) -> PredictionRecorder:
    settings = MonitoringConfig.model_validate({"key_prefix": prefix, **config})
    return PredictionRecorder(client, settings, clock=clock)


async def test_two_recorders_add_up_per_window(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    clock = Clock(T0 + 5)
    a, b = recorder(redis_client, redis_prefix, clock), recorder(redis_client, redis_prefix, clock)
    a.record_image("m", "1", [face("happy", 0.95), face("sad", 0.42)])
    a.record_image("m", "1", [])
    logits = np.array([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    b.record_rows("m", "1", LABELS, logits, probabilities=False)
    b.record_rows("m", "1", LABELS, np.array([[0.1, 0.2, 0.7]], dtype=np.float32), True)
    clock.now = T0 + 65  # the next minute
    b.record_image("m", "2", [face("angry", 1.0)])
    assert await a.flush()
    assert await b.flush()

    windows = await a.read("m", None, T0, T0 + 120)
    first = windows["1"][T0]
    assert (first.count, first.images, first.image_faces) == (6, 2, 2)
    assert first.labels == {"happy": 2, "sad": 3, "angry": 1}
    softmaxed = np.exp(logits.max(axis=1)) / np.exp(logits).sum(axis=1)
    expected_sum = 0.95 + 0.42 + softmaxed.sum() + 0.7
    assert first.mean_confidence == pytest.approx(expected_sum / 6, abs=1e-5)
    assert (first.bins[9], first.bins[4], first.bins[5], first.bins[7]) == (3, 1, 1, 1)
    assert sum(first.bins) == 6
    assert list(windows["2"]) == [T0 + 60]
    assert windows["2"][T0 + 60].labels == {"angry": 1}
    # Reading a period that starts after version 1's last window leaves it out.
    assert list(await a.read("m", None, T0 + 60, T0 + 120)) == ["2"]


async def test_windows_are_kept_for_the_retention_only(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    now = time.time()
    clock = Clock(now)
    rec = recorder(redis_client, redis_prefix, clock, retention_s=3600, window_s=60)
    rec.record_image("m", "1", [face("happy", 0.9)])
    assert await rec.flush()
    window = int(now) - int(now) % 60
    # Redis drops the window an hour after it ended.
    assert 3600 - 5 <= await redis_client.ttl(rec.keys("m", "1", window)) <= 3660
    assert 3600 - 5 <= await redis_client.ttl(rec.keys("m")) <= 3660

    # A window older than the retention (counted while Redis was away) is never written.
    clock.now = now - 7200
    rec.record_image("m", "1", [face("sad", 0.5)])
    clock.now = now
    assert await rec.flush()
    old = int(now - 7200) - int(now - 7200) % 60
    assert not await redis_client.exists(rec.keys("m", "1", old))
    assert (await rec.read("m", ["1"], old, old + 60))["1"] == {}


def redis_server(port: int, folder: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def late_redis_port() -> int:
    return free_port()


@pytest.fixture
def own_redis(late_redis_port: int, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
        proc.wait(timeout=10)


async def test_counts_wait_in_memory_while_redis_is_down(
    late_redis_port: int,
    own_redis: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{late_redis_port}/0", socket_connect_timeout=1, socket_timeout=1
    )
    clock = Clock(T0 + 1)
    rec = recorder(client, "mon", clock)
    try:
        rec.record_image("m", "3", [face("sad", 0.6)])
        assert not await rec.flush()
        rec.record_image("m", "3", [face("sad", 0.6), face("happy", 0.8)])
        assert not await rec.flush()
        warnings = [r for r in caplog.records if "cannot write prediction windows" in r.message]
        assert len(warnings) == 1  # logged once, not per flush

        own_redis.append(redis_server(late_redis_port, tmp_path))
        wait_for_port(late_redis_port)
        assert await rec.flush()
        window = (await rec.read("m", ["3"], T0, T0 + 60))["3"][T0]
        assert (window.count, window.images) == (3, 2)
        assert window.labels == {"sad": 2, "happy": 1}
    finally:
        await client.aclose()


async def test_empty_and_broken_answers_are_not_counted(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    rec = recorder(redis_client, redis_prefix, Clock(T0 + 1))
    rec.record_rows("m", "1", LABELS, np.zeros((0, 3), np.float32), probabilities=False)
    rec.record_rows("m", "1", LABELS, np.zeros((2, 5), np.float32), probabilities=False)
    nan_row = np.array([[np.nan, 1.0, 0.0], [0.0, 3.0, 0.0]], np.float32)
    rec.record_rows("m", "1", LABELS, nan_row, probabilities=False)
    rec.record_image("m", "1", [face("sad", float("nan"))])
    assert await rec.flush()
    window = (await rec.read("m", ["1"], T0, T0 + 60))["1"][T0]
    # Only the finite logits row and the face (its score counted as 0).
    assert (window.count, window.labels, window.bins[0]) == (2, {"happy": 1, "sad": 1}, 1)
