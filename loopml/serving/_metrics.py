"""Prometheus metrics of one server app, in a registry of its own (not the global one).

Under ``serve(workers=N)`` every worker process writes its metrics to memory-mapped files
in one directory (prometheus-client's multiprocess mode, switched on by
``PROMETHEUS_MULTIPROC_DIR`` before the worker starts), so ``/metrics`` from any worker
is the sum over all of them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, float("inf")
)  # fmt: skip
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, float("inf"))

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared metrics directory when this process runs in multiprocess mode, else None.

    prometheus-client picks its value class once, at import, from ``PROMETHEUS_MULTIPROC_DIR``;
    both must agree for the files to hold this process's values.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path or not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return path


class ServingMetrics:
    """Requests by endpoint and status, latency, batch sizes, dropped log rows, versions.

    Parameters
    ----------
    dropped : returns how many prediction-log rows were dropped so far (0 without a log).

    In multiprocess mode (see :func:`multiprocess_dir`) counters and histograms are summed
    over the workers, the dropped-rows gauge is summed over live workers, and a version
    that stops being served reads 0 instead of disappearing.
    """

    def __init__(self, dropped: Callable[[], float] | None = None) -> None:
        self.shared_dir = multiprocess_dir()
        self._dropped = dropped or (lambda: 0.0)
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
            multiprocess_mode="livemax",
        )
        self._dropped_rows = Gauge(
            "loopml_prediction_log_dropped_rows",
            "Prediction-log rows dropped because the log buffer was full.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        if self.shared_dir is None:
            self._dropped_rows.set_function(self._dropped)
        self._children: dict[tuple[str, str], Counter] = {}

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        key = (endpoint, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._requests.labels(*key)
        child.inc()
        self._latency.labels(endpoint).observe(seconds)
        if self.shared_dir is not None:  # a function gauge is not shared across processes
            self._dropped_rows.set(self._dropped())

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
            if self.shared_dir is not None:  # the shared file keeps the last value written
                self._info.labels(*labels).set(0)
            with contextlib.suppress(KeyError):
                self._info.remove(*labels)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every worker, when shared)."""
        if self.shared_dir is None:
            return generate_latest(self.registry)
        self._dropped_rows.set(self._dropped())
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.shared_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """Drop this process's live gauges from the shared files (at worker shutdown)."""
        if self.shared_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.shared_dir)  # type: ignore[no-untyped-call]
