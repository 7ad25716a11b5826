"""The monitoring report: recorded windows as a time series, and each version's drift status.

Reads the windows every serving process wrote (:mod:`chimp.serving.recording`), each version's
validation reference from its registry tag, and judges drift (:mod:`chimp.serving.drift`). A
background task refreshes the drift of the versions this process serves, for Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from pydantic import ValidationError
from redis.exceptions import RedisError

from chimp.serving.config import MonitoringConfig
from chimp.serving.drift import confidence_test, label_test
from chimp.serving.model_manager import ModelManager, RegistryReader
from chimp.serving.recording import PredictionRecorder, WindowCounts
from chimp.shared.errors import BadRequestError, ChimpError, DependencyUnavailableError
from chimp.shared.schemas.monitoring import (
    REFERENCE_TAG,
    ModelMonitoring,
    PredictionReference,
    SeriesPoint,
    VersionDrift,
)

logger = logging.getLogger(__name__)

MAX_POINTS = 2000
"""Most buckets one report may have (``window`` too small for the period is a 400)."""

DEFAULT_POINTS = 120
"""Without ``window``, buckets are sized so that a period has at most about this many."""


def _shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {label: n / total for label, n in counts.items()} if total else {}


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


class Monitor:
    def __init__(
        self,
        recorder: PredictionRecorder,
        registry: RegistryReader,
        config: MonitoringConfig,
        *,
        manager: ModelManager | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recorder = recorder
        self.config = config
        self._registry = registry
        self._manager = manager
        self._clock = clock
        # A version's reference never changes once registered: cached, found or not.
        self._references: dict[tuple[str, str], tuple[PredictionReference | None, str]] = {}
        self.latest: dict[tuple[str, str], VersionDrift] = {}
        self._task: asyncio.Task[None] | None = None

    # -- references --------------------------------------------------------------------------

    async def reference(self, name: str, version: str) -> tuple[PredictionReference | None, str]:
        """The version's validation reference, or None and why there is none."""
        cached = self._references.get((name, version))
        if cached is not None:
            return cached
        try:
            info = await self._registry.get_version(name, version)
        except ChimpError as exc:
            # Not cached: the registry may be back, or the version registered, next time.
            return None, f"its reference could not be read from the registry: {exc.message}"
        raw = info.tags.get(REFERENCE_TAG)
        found: tuple[PredictionReference | None, str]
        if raw is None:
            found = (None, "this version was registered without a validation reference")
        else:
            try:
                found = (PredictionReference.model_validate_json(raw), "")
            except ValidationError:
                found = (None, "this version's reference tag is not readable")
        self._references[(name, version)] = found
        return found

    # -- the report --------------------------------------------------------------------------

    def _period(
        self, start: datetime | None, end: datetime | None, window: int | None
    ) -> tuple[int, int, int]:
        record = self.config.window_s
        # A time without a zone is UTC, whatever this machine's zone.
        start, end = (t.replace(tzinfo=UTC) if t and t.tzinfo is None else t for t in (start, end))
        end_s = math.ceil(end.timestamp() if end is not None else self._clock())
        start_s = int(start.timestamp()) if start is not None else end_s - self.config.period_s
        if start_s >= end_s:
            raise BadRequestError("from must be before to")
        if window is None:
            buckets = math.ceil((end_s - start_s) / record / DEFAULT_POINTS)
            window = record * max(1, buckets)
        elif window < record or window % record:
            raise BadRequestError(
                f"window must be a multiple of the recording window ({record} s), got {window}"
            )
        start_s -= start_s % window  # whole buckets
        if math.ceil((end_s - start_s) / window) > MAX_POINTS:
            raise BadRequestError(
                f"window {window} s gives more than {MAX_POINTS} points for this period: "
                "choose a larger window or a shorter period"
            )
        return start_s, end_s, window

    def _served_versions(self, name: str) -> set[str]:
        if self._manager is None:
            return set()
        states = [s for s in self._manager.states() if s.name == name]
        return {v for s in states for v in (*s.serving.values(), *(m.version for m in s.loaded))}

    async def _windows(
        self, name: str, versions: Iterable[str] | None, start: int, end: int
    ) -> dict[str, dict[int, WindowCounts]]:
        if not self.recorder.enabled:
            raise DependencyUnavailableError(
                "prediction monitoring is off in this serving process "
                "(CHIMP_SERVING__MONITORING__ENABLED=false)",
                detail={"dependency": "monitoring"},
            )
        # This process's latest predictions first, so what it just answered shows.
        await self.recorder.flush()
        try:
            return await self.recorder.read(name, versions, start, end)
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError(
                f"Redis is not reachable, recorded predictions cannot be read: {exc}",
                detail={"dependency": "redis"},
            ) from exc

    async def judge(self, name: str, version: str, counts: WindowCounts) -> VersionDrift:
        """One version's status over a period, from its summed windows."""
        reference, why = await self.reference(name, version)
        drift = VersionDrift(
            version=version,
            count=counts.count,
            images=counts.images,
            faces_per_image=counts.image_faces / counts.images if counts.images else None,
            status="ok",
            reason="",
            label_shares=_shares(counts.labels),
            mean_confidence=counts.mean_confidence,
            confidence_bins=list(counts.bins),
            reference=reference,
        )
        if reference is None:
            return drift.model_copy(update={"status": "no reference", "reason": why})
        if counts.count < self.config.min_count:
            return drift.model_copy(
                update={
                    "status": "not enough data",
                    "reason": f"{counts.count} predictions in the period, drift is judged from "
                    f"{self.config.min_count}",
                }
            )
        labels = label_test(reference, counts.labels, self.config)
        confidence = confidence_test(reference, counts.bins, self.config)
        what = [
            f"labels {labels.test} "
            + (f"p={labels.p_value:.3g}" if labels.p_value is not None else "")
            + (f"distance={labels.statistic:.3f}" if labels.p_value is None else ""),
            f"confidence KS D={confidence.statistic:.3f} p={confidence.p_value:.3g}",
        ]
        drifted = [
            part for part, flag in zip(what, (labels.drift, confidence.drift), strict=True) if flag
        ]
        return drift.model_copy(
            update={
                "status": "drift" if drifted else "ok",
                "reason": ("drift in " + "; ".join(drifted)) if drifted else "; ".join(what),
                "labels": labels,
                "confidence": confidence,
            }
        )

    async def report(
        self,
        name: str,
        *,
        version: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        window: int | None = None,
    ) -> ModelMonitoring:
        start_s, end_s, window_s = self._period(start, end, window)
        asked = [version] if version is not None else None
        windows = await self._windows(name, asked, start_s, end_s)
        versions = set(windows)
        if version is None:
            versions |= self._served_versions(name)
        buckets: dict[int, WindowCounts] = {}
        per_bucket_versions: dict[int, Counter[str]] = {}
        totals: dict[str, WindowCounts] = {v: WindowCounts() for v in versions}
        for v, by_window in windows.items():
            for w, counts in by_window.items():
                bucket = w - (w - start_s) % window_s
                buckets.setdefault(bucket, WindowCounts()).merge(counts)
                per_bucket_versions.setdefault(bucket, Counter())[v] += counts.count
                totals[v].merge(counts)
        judged = [
            await self.judge(name, v, totals[v])
            for v in sorted(versions, key=_version_key, reverse=True)
        ]
        if start is None and end is None and window is None:
            self.latest.update({(name, d.version): d for d in judged})
        series = []
        for bucket in range(start_s, end_s, window_s):
            counts = buckets.get(bucket, WindowCounts())
            series.append(
                SeriesPoint(
                    start=datetime.fromtimestamp(bucket, UTC),
                    count=counts.count,
                    images=counts.images,
                    label_counts=dict(counts.labels),
                    label_shares=_shares(counts.labels),
                    mean_confidence=counts.mean_confidence,
                    versions=dict(per_bucket_versions.get(bucket, {})),
                )
            )
        labels: list[str] = []
        for d in judged:
            if d.reference is not None:
                labels += [label for label in d.reference.label_counts if label not in labels]
        seen = {label for t in totals.values() for label in t.labels}
        labels += sorted(seen - set(labels))
        return ModelMonitoring(
            model=name,
            start=datetime.fromtimestamp(start_s, UTC),
            end=datetime.fromtimestamp(end_s, UTC),
            window_s=window_s,
            record_window_s=self.config.window_s,
            min_count=self.config.min_count,
            labels=labels,
            series=series,
            versions=judged,
        )

    # -- drift gauges --------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Judge every model this process serves over the default period (for the gauges)."""
        if self._manager is None or not self.recorder.enabled:
            return
        for state in self._manager.states():
            try:
                await self.report(state.name)
            except ChimpError as exc:
                logger.debug("monitoring: no drift refresh of %s: %s", state.name, exc.message)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.drift_refresh_s)
            try:
                await self.refresh()
            except Exception:
                logger.exception("monitoring: drift refresh failed")

    def start(self) -> None:
        self.recorder.start()
        if self.recorder.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="monitoring-drift")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.recorder.stop()
