"""Prometheus metrics of one server app, in a registry of its own (not the global one)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, float("inf")
)  # fmt: skip
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, float("inf"))

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServingMetrics:
    """Requests by endpoint and status, latency, batch sizes, dropped log rows, versions.

    Parameters
    ----------
    dropped : returns how many prediction-log rows were dropped so far (0 without a log).
    """

    def __init__(self, dropped: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "loopml_requests",
            "Prediction requests by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "loopml_request_latency_seconds",
            "Time from request start to response, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._batch_rows = Histogram(
            "loopml_batch_rows",
            "Rows per model call, by model version.",
            ["model", "version"],
            buckets=_ROW_BUCKETS,
            registry=self.registry,
        )
        self._batch_latency = Histogram(
            "loopml_batch_latency_seconds",
            "Time of one model call, by model version.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._info = Gauge(
            "loopml_model_version_info",
            "1 for each model version an endpoint serves, labelled by role.",
            ["endpoint", "model", "version", "role"],
            registry=self.registry,
        )
        dropped_rows = Gauge(
            "loopml_prediction_log_dropped_rows",
            "Prediction-log rows dropped because the log buffer was full.",
            registry=self.registry,
        )
        dropped_rows.set_function(dropped or (lambda: 0.0))
        self._children: dict[tuple[str, str], Counter] = {}

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        key = (endpoint, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._requests.labels(*key)
        child.inc()
        self._latency.labels(endpoint).observe(seconds)

    def batch_observer(self, model: str, version: int) -> Callable[[int, float], None]:
        """A callback recording each batch's rows and seconds for one model version."""
        rows = self._batch_rows.labels(model, str(version))
        latency = self._batch_latency.labels(model, str(version))

        def observe(n: int, seconds: float) -> None:
            rows.observe(n)
            latency.observe(seconds)

        return observe

    def serving(self, endpoint: str, model: str, version: int, role: str, on: bool) -> None:
        """Mark a model version as served (``on``) or no longer served by an endpoint."""
        labels = (endpoint, model, str(version), role)
        if on:
            self._info.labels(*labels).set(1)
        else:
            with contextlib.suppress(KeyError):
                self._info.remove(*labels)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
