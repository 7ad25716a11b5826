"""Prometheus metrics of one serving app, in a registry of its own (tests build many apps)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chimp.serving.model_manager import ModelManager
from chimp.serving.monitoring import Monitor
from chimp.serving.recording import MICRO
from chimp.shared.schemas.monitoring import CONFIDENCE_BINS

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _version_number(version: str) -> float:
    try:
        return float(version)
    except ValueError:
        return float("nan")


class _ModelCollector(Collector):
    """Reads the manager's state at scrape time, so gauges can never drift from the truth."""

    def __init__(self) -> None:
        self.manager: ModelManager | None = None

    def collect(self) -> Iterator[Metric]:
        if self.manager is None:  # before the lifespan started
            return
        served = GaugeMetricFamily(
            "chimp_serving_model_version",
            "Version each alias is served by (the registry's version number).",
            labels=["model", "alias"],
        )
        loaded = GaugeMetricFamily(
            "chimp_serving_model_loaded",
            "1 for every model version loaded in this process.",
            labels=["model", "version"],
        )
        for state in self.manager.states():
            for alias, version in state.serving.items():
                served.add_metric([state.name, alias], _version_number(version))
            for model in state.loaded:
                loaded.add_metric([state.name, model.version], 1.0)
        up = GaugeMetricFamily(
            "chimp_serving_registry_up", "1 when the last registry poll succeeded."
        )
        up.add_metric([], 1.0 if self.manager.registry_ok else 0.0)
        yield from (served, loaded, up)


class _MonitoringCollector(Collector):
    """Confidence histograms of this process's predictions and the latest drift per version."""

    def __init__(self) -> None:
        self.monitor: Monitor | None = None

    def collect(self) -> Iterator[Metric]:
        if self.monitor is None:
            return
        recorder = self.monitor.recorder
        recorder.collect()  # count what requests recorded since the last flush
        confidence = HistogramMetricFamily(
            "chimp_serving_prediction_confidence",
            "Top score of each prediction, per model version (predictions of this process).",
            labels=["model", "version"],
        )
        edges = [f"{(i + 1) / CONFIDENCE_BINS:g}" for i in range(CONFIDENCE_BINS - 1)]
        for (model, version), counts in sorted(recorder.totals.items()):
            cumulative = list(accumulate(counts.bins))
            buckets = [*zip(edges, cumulative, strict=False), ("+Inf", cumulative[-1])]
            confidence.add_metric(
                [model, version], buckets=buckets, sum_value=counts.confidence_micro / MICRO
            )
        drift = GaugeMetricFamily(
            "chimp_serving_drift",
            "1 when a version's recent predictions drift from its validation reference, 0 when "
            "they do not (over the default period; absent without enough data or a reference).",
            labels=["model", "version"],
        )
        statistic = GaugeMetricFamily(
            "chimp_serving_drift_statistic",
            "The statistics behind chimp_serving_drift: labels (chi-squared p-value or "
            "Jensen-Shannon distance) and confidence (KS p-value).",
            labels=["model", "version", "test"],
        )
        for (model, version), judged in sorted(self.monitor.latest.items()):
            if judged.status not in ("ok", "drift"):
                continue
            drift.add_metric([model, version], 1.0 if judged.status == "drift" else 0.0)
            if judged.labels is not None:
                value = judged.labels.p_value
                statistic.add_metric(
                    [model, version, judged.labels.test],
                    value if value is not None else judged.labels.statistic,
                )
            if judged.confidence is not None:
                statistic.add_metric(
                    [model, version, judged.confidence.test], judged.confidence.p_value
                )
        yield from (confidence, drift, statistic)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chimp_serving_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "chimp_serving_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "chimp_serving_predictions",
            "Top labels predicted, per model version.",
            ["model", "version", "label"],
            registry=self.registry,
        )
        self._models = _ModelCollector()
        self.registry.register(self._models)
        self._monitoring = _MonitoringCollector()
        self.registry.register(self._monitoring)

    def attach(self, manager: ModelManager) -> None:
        """Report ``manager``'s models from now on (called by the lifespan)."""
        self._models.manager = manager

    def attach_monitor(self, monitor: Monitor) -> None:
        """Report ``monitor``'s confidence histograms and drift (called by the lifespan)."""
        self._monitoring.monitor = monitor

    def count_labels(self, model: str, version: str, labels: list[str]) -> None:
        for label in labels:
            self.predictions.labels(model, version, label).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
