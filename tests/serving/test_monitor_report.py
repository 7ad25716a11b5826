"""The monitoring report over recorded windows (real Redis; the registry is a fake of ours)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from chimp.serving.config import MonitoringConfig
from chimp.serving.monitoring import Monitor
from chimp.serving.recording import PredictionRecorder
from chimp.shared.errors import BadRequestError, NotFoundError
from chimp.shared.schemas.models import FacePrediction, ModelVersionInfo
from chimp.shared.schemas.monitoring import REFERENCE_TAG, PredictionReference

T0 = 1_800_000_000  # the start of a minute
LABELS = ["happy", "sad"]


class Registry:
    """Versions 1 (with a reference), 2 (without); anything else is unknown."""

    def __init__(self) -> None:
        self.reads = 0

    async def get_version(self, name: str, version: str) -> ModelVersionInfo:
        self.reads += 1
        if version not in ("1", "2"):
            raise NotFoundError(f"{name} has no version {version}")
        reference = PredictionReference.from_predictions(
            LABELS, [0] * 30 + [1] * 30, np.linspace(0.5, 1, 60), split="test"
        )
        tags = {REFERENCE_TAG: reference.model_dump_json()} if version == "1" else {}
        return ModelVersionInfo(name=name, version=version, tags=tags)

    async def aliases(self, name: str) -> dict[str, str]:
        return {}

    async def download_onnx(self, name: str, version: str, dest_dir: Path) -> Path:
        raise NotImplementedError


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.fixture
async def monitor(redis_client: aioredis.Redis, redis_prefix: str) -> Monitor:
    clock = [float(T0)]
    config = MonitoringConfig(key_prefix=redis_prefix, min_count=4)
    recorder = PredictionRecorder(redis_client, config, clock=lambda: clock[0])
    for minute, (label, score) in enumerate([("happy", 0.9), ("sad", 0.6), ("happy", 0.7)]):
        clock[0] = T0 + 60 * minute + 1
        for _ in range(minute + 1):
            recorder.record_image("m", "1", [FacePrediction(scores={}, label=label, score=score)])
        recorder.record_image("m", "2", [])
    recorder.record_image("m", "9", [FacePrediction(scores={}, label="sad", score=0.2)])
    assert await recorder.flush()
    return Monitor(recorder, Registry(), config, clock=lambda: T0 + 180)


async def test_buckets_sum_whole_windows(monitor: Monitor) -> None:
    report = await monitor.report("m", start=at(T0), end=at(T0 + 240), window=120)
    assert [p.start for p in report.series] == [at(T0), at(T0 + 120)]
    first, second = report.series
    assert (first.count, first.label_counts, first.images) == (3, {"happy": 1, "sad": 2}, 5)
    assert first.versions == {"1": 3, "2": 0}
    assert first.mean_confidence == pytest.approx((0.9 + 2 * 0.6) / 3)
    assert (second.count, second.label_counts) == (4, {"happy": 3, "sad": 1})


async def test_each_version_says_why_it_has_its_status(monitor: Monitor) -> None:
    report = await monitor.report("m", start=at(T0), end=at(T0 + 180))
    versions = {v.version: v for v in report.versions}
    assert [v.version for v in report.versions] == ["9", "2", "1"]  # newest first
    assert versions["1"].status in ("ok", "drift")
    assert (versions["1"].count, versions["1"].faces_per_image) == (6, 1.0)
    assert versions["2"].status == "no reference"
    assert "registered without a validation reference" in versions["2"].reason
    assert (versions["2"].images, versions["2"].faces_per_image) == (3, 0.0)
    assert versions["9"].status == "no reference"
    assert "could not be read from the registry" in versions["9"].reason
    assert report.labels == ["happy", "sad"]


async def test_a_version_and_a_shorter_period_narrow_the_report(monitor: Monitor) -> None:
    report = await monitor.report("m", version="1", start=at(T0 + 60), end=at(T0 + 120))
    (only,) = report.versions
    assert (only.version, only.count, only.status) == ("1", 2, "not enough data")
    assert only.reason == "2 predictions in the period, drift is judged from 4"
    # A time without a zone is read as UTC.
    naive = await monitor.report(
        "m", version="1", start=datetime(2027, 1, 15, 8, 1), end=at(T0 + 120)
    )
    assert naive.start == at(T0 + 60)


async def test_references_are_read_once_per_version(monitor: Monitor) -> None:
    registry = monitor._registry
    assert isinstance(registry, Registry)
    await monitor.report("m", start=at(T0), end=at(T0 + 180))
    await monitor.report("m", start=at(T0), end=at(T0 + 180))
    # 1 and 2 are cached (found or not); the unknown 9 is asked again each time.
    assert registry.reads == 2 + 2 * 1


async def test_periods_that_make_no_sense_are_refused(monitor: Monitor) -> None:
    with pytest.raises(BadRequestError, match="from must be before to"):
        await monitor.report("m", start=at(T0 + 60), end=at(T0))
    with pytest.raises(BadRequestError, match="multiple of the recording window"):
        await monitor.report("m", window=30)
