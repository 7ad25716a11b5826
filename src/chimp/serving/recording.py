"""What each served version predicts, counted in time windows that every process adds to Redis.

The request path only touches memory: :meth:`PredictionRecorder.record_image` adds one image's
faces to the current window's counters, and :meth:`PredictionRecorder.record_rows` keeps a
reference to a tensor answer's score rows (already computed; turned into counts later, in bulk).
Every ``flush_interval_s`` and on shutdown a background task folds everything into per-window
counts and adds them to Redis with ``HINCRBY`` in one ``MULTI``/``EXEC`` pipeline, so any number
of serving processes and replicas sum exactly, and windows outlive the process.

Redis layout (``P`` the key prefix; model name and version percent-encoded)::

    P:{model}:versions                 zset  version -> start of its latest window
    P:{model}:{version}:windows        zset  window start (member and score)
    P:{model}:{version}:w:{start}      hash  n, img, imgfaces, csum, b0..b9, l:{label}

``csum`` is the sum of top scores in millionths (integers add exactly). Every key expires
``retention_s`` after its window. When Redis cannot be reached, counts stay in memory (windows
older than the retention are dropped) and are added once it is back; one warning is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chimp.serving.config import MonitoringConfig
from chimp.shared.onnx_model import scores_from_outputs
from chimp.shared.schemas.models import FacePrediction
from chimp.shared.schemas.monitoring import CONFIDENCE_BINS, confidence_bin, confidence_bins

logger = logging.getLogger(__name__)

MICRO = 1_000_000
"""Confidence sums are kept in millionths so that they add exactly in Redis."""


@dataclass
class WindowCounts:
    """Predictions of one version in one window (or any sum of windows)."""

    count: int = 0
    images: int = 0
    image_faces: int = 0
    confidence_micro: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    bins: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)

    def add_prediction(self, label: str, score: float) -> None:
        if not math.isfinite(score):  # a broken model's NaN must not break the request
            score = 0.0
        self.count += 1
        self.labels[label] += 1
        self.bins[confidence_bin(score)] += 1
        self.confidence_micro += round(score * MICRO)

    def add_scores(self, scores: np.ndarray, labels: list[str]) -> None:
        """Rows of per-label probabilities."""
        best = scores.argmax(axis=1)
        top = scores[np.arange(len(scores)), best]
        self.count += len(scores)
        for index, n in enumerate(np.bincount(best, minlength=len(labels)).tolist()):
            if n:
                self.labels[labels[index]] += n
        for index, n in enumerate(confidence_bins(top).tolist()):
            self.bins[index] += n
        self.confidence_micro += int(np.rint(top.astype(np.float64) * MICRO).sum())

    def merge(self, other: WindowCounts) -> None:
        self.count += other.count
        self.images += other.images
        self.image_faces += other.image_faces
        self.confidence_micro += other.confidence_micro
        self.labels.update(other.labels)
        self.bins = [a + b for a, b in zip(self.bins, other.bins, strict=True)]

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_micro / MICRO / self.count if self.count else None

    def fields(self) -> dict[str, int]:
        """The Redis hash increments of this window."""
        out = {"n": self.count, "img": self.images, "imgfaces": self.image_faces}
        out["csum"] = self.confidence_micro
        out |= {f"b{i}": n for i, n in enumerate(self.bins) if n}
        out |= {f"l:{label}": n for label, n in self.labels.items() if n}
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_fields(cls, raw: dict[bytes, bytes]) -> WindowCounts:
        counts = cls()
        for key_bytes, value_bytes in raw.items():
            key, value = key_bytes.decode(), int(value_bytes)
            if key == "n":
                counts.count = value
            elif key == "img":
                counts.images = value
            elif key == "imgfaces":
                counts.image_faces = value
            elif key == "csum":
                counts.confidence_micro = value
            elif key.startswith("l:"):
                counts.labels[key[2:]] = value
            elif key.startswith("b") and key[1:].isdigit() and int(key[1:]) < CONFIDENCE_BINS:
                counts.bins[int(key[1:])] = value
        return counts


@dataclass
class _Rows:
    """Tensor answers not yet counted: their outputs, and how to read them."""

    labels: list[str]
    probabilities: bool
    outputs: list[np.ndarray] = field(default_factory=list)


WindowKey = tuple[str, str, int]
"""(model, version, window start in epoch seconds)."""


def _part(value: str) -> str:
    return quote(value, safe="")


class PredictionRecorder:
    """Per-version prediction windows: counted in memory, summed in Redis."""

    def __init__(
        self,
        redis: aioredis.Redis | None,
        config: MonitoringConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.config = config
        self.enabled = config.enabled and redis is not None
        self._clock = clock
        self._window_s = config.window_s
        self._faces: dict[WindowKey, WindowCounts] = {}
        # Keyed with the kind of rows too: v2 answers hand over logits, legacy ones scores.
        self._rows: dict[tuple[str, str, int, bool], _Rows] = {}
        self._unsent: dict[WindowKey, WindowCounts] = {}
        # Since this process started, per (model, version): for Prometheus.
        self.totals: dict[tuple[str, str], WindowCounts] = {}
        self._redis_down = False
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- the request path: memory only -----------------------------------------------------

    def _window(self) -> int:
        now = int(self._clock())
        return now - now % self._window_s

    def record_image(self, name: str, version: str, faces: list[FacePrediction]) -> None:
        """One answered image and the prediction for each face found in it."""
        if not self.enabled:
            return
        key = (name, version, self._window())
        counts = self._faces.get(key)
        if counts is None:
            counts = self._faces[key] = WindowCounts()
        counts.images += 1
        counts.image_faces += len(faces)
        for face in faces:
            counts.add_prediction(face.label, face.score)

    def record_rows(
        self, name: str, version: str, labels: list[str], outputs: np.ndarray, probabilities: bool
    ) -> None:
        """A tensor answer's rows (logits, or probabilities when ``probabilities``)."""
        if not self.enabled:
            return
        key = (name, version, self._window(), probabilities)
        rows = self._rows.get(key)
        if rows is None:
            rows = self._rows[key] = _Rows(labels, probabilities)
        rows.outputs.append(outputs)

    # -- counting and flushing ---------------------------------------------------------------

    def collect(self) -> None:
        """Fold what requests recorded into window counts (cheap; in bulk per window)."""
        faces, self._faces = self._faces, {}
        rows, self._rows = self._rows, {}
        counted: list[tuple[WindowKey, WindowCounts]] = list(faces.items())
        for (name, version, window, _), pending in rows.items():
            counts = WindowCounts()
            width = len(pending.labels)
            usable = [o.reshape(o.shape[0], -1) for o in pending.outputs if o.ndim and len(o)]
            usable = [o for o in usable if o.shape[1] == width]
            merged = np.concatenate(usable) if usable else None
            if merged is not None:  # a row with NaN or infinity has no top label to count
                merged = merged[np.isfinite(merged).all(axis=1)]
            if merged is None or not len(merged):
                continue
            scores = scores_from_outputs(merged, pending.probabilities)
            counts.add_scores(scores, pending.labels)
            counted.append(((name, version, window), counts))
        for key, counts in counted:
            self._unsent.setdefault(key, WindowCounts()).merge(counts)
            self.totals.setdefault(key[:2], WindowCounts()).merge(counts)

    def _expire_old(self) -> None:
        oldest = self._clock() - self.config.retention_s
        for key in [k for k in self._unsent if k[2] + self._window_s < oldest]:
            del self._unsent[key]

    def keys(self, name: str, version: str | None = None, window: int | None = None) -> str:
        base = f"{self.config.key_prefix}:{_part(name)}"
        if version is None:
            return f"{base}:versions"
        if window is None:
            return f"{base}:{_part(version)}:windows"
        return f"{base}:{_part(version)}:w:{window}"

    async def flush(self) -> bool:
        """Add everything counted so far to Redis; False (counts kept) when Redis is down."""
        if not self.enabled or self.redis is None:
            return True
        async with self._flush_lock:
            self.collect()
            self._expire_old()
            if not self._unsent:
                return True
            sending, self._unsent = self._unsent, {}
            try:
                await self._write(sending)
            except (RedisError, OSError) as exc:
                for key, counts in sending.items():
                    self._unsent.setdefault(key, WindowCounts()).merge(counts)
                if not self._redis_down:
                    logger.warning(
                        "monitoring: cannot write prediction windows to Redis (%s); serving goes "
                        "on and keeps the counts in memory until Redis is back",
                        exc,
                    )
                self._redis_down = True
                return False
            if self._redis_down:
                logger.info("monitoring: Redis is back, prediction windows written")
            self._redis_down = False
            return True

    async def _write(self, sending: dict[WindowKey, WindowCounts]) -> None:
        assert self.redis is not None
        keep_s = self.config.retention_s + self._window_s
        now = self._clock()
        async with self.redis.pipeline(transaction=True) as pipe:
            latest: dict[tuple[str, str], int] = {}
            for (name, version, window), counts in sending.items():
                key = self.keys(name, version, window)
                for field_name, value in counts.fields().items():
                    pipe.hincrby(key, field_name, value)
                pipe.expireat(key, window + keep_s)
                pipe.zadd(self.keys(name, version), {str(window): window})
                latest[(name, version)] = max(latest.get((name, version), 0), window)
            for (name, version), window in latest.items():
                index = self.keys(name, version)
                pipe.zremrangebyscore(index, "-inf", now - keep_s)
                pipe.expire(index, keep_s)
                pipe.zadd(self.keys(name), {version: window}, gt=True)
                pipe.expire(self.keys(name), keep_s)
            await pipe.execute()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # never let the recorder die: log and try again next time
                logger.exception("monitoring: flushing prediction windows failed")

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="monitoring-flush")

    async def stop(self) -> None:
        """Stop the periodic flush and write what is left (called on shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    # -- reading -----------------------------------------------------------------------------

    async def read(
        self, name: str, versions: Iterable[str] | None, start: int, end: int
    ) -> dict[str, dict[int, WindowCounts]]:
        """Windows of ``name`` starting in [start, end), per version (all active ones if None).

        Raises :class:`redis.exceptions.RedisError` when Redis cannot be read.
        """
        assert self.redis is not None
        if versions is None:
            found = await self.redis.zrangebyscore(self.keys(name), start, "+inf")
            versions = [v.decode() for v in found]
        chosen = list(versions)
        async with self.redis.pipeline(transaction=False) as pipe:
            for version in chosen:
                pipe.zrangebyscore(self.keys(name, version), start, f"({end}")
            listed: list[list[bytes]] = await pipe.execute()
        wanted = [(v, int(w)) for v, windows in zip(chosen, listed, strict=True) for w in windows]
        async with self.redis.pipeline(transaction=False) as pipe:
            for version, window in wanted:
                pipe.hgetall(self.keys(name, version, window))
            hashes: list[dict[bytes, bytes]] = await pipe.execute()
        out: dict[str, dict[int, WindowCounts]] = {v: {} for v in chosen}
        for (version, window), raw in zip(wanted, hashes, strict=True):
            if raw:
                out[version][window] = WindowCounts.from_fields(raw)
        return out
