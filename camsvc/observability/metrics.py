"""Prometheus metrics (API.md §11) on the service's own registry, and request statistics.

Labels are bounded by construction: `method` is a registered method name, `unknown` or
`invalid`; `code` an error code; `device` a camera id within `camera.device_range`; `status`
a camera status. Nothing per file, per user or per connection becomes a label.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator

import msgspec
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# `_created` series double the exposition for no use here (API.md §11 lists none).
disable_created_metrics()

__all__ = ["BUCKETS", "CONTENT_TYPE", "MethodTimes", "Metrics"]

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# get_metrics reports percentiles over each method's most recent calls.
WINDOW = 1024


class MethodTimes(msgspec.Struct, frozen=True):
    """Response-time figures of one method over its last WINDOW calls."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def _percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


class _MethodStats:
    """Counts of one method's requests, kept in plain Python (the hot path)."""

    __slots__ = ("buckets", "count", "sum_s", "times")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; last is +Inf
        self.count = 0
        self.sum_s = 0.0
        self.times: deque[float] = deque(maxlen=WINDOW)


class _RequestCollector(Collector):
    """Exports the request families from the plain counts, at scrape time only."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        requests = CounterMetricFamily(
            "camera_service_requests", "Requests answered", labels=["method", "code"]
        )
        errors = CounterMetricFamily(
            "camera_service_errors", "Error replies", labels=["method", "code"]
        )
        for (method, code), n in sorted(m.code_counts.items()):
            requests.add_metric([method, str(code)], n)
            if code:
                errors.add_metric([method, str(code)], n)
        histogram = HistogramMetricFamily(
            "camera_service_response_time_seconds", "Request handling time", labels=["method"]
        )
        for method, st in sorted(m.method_stats.items()):
            histogram.add_metric([method], _cumulative(st.buckets), st.sum_s)
        yield requests
        yield errors
        yield histogram


_LE = [floatToGoString(b) for b in (*BUCKETS, math.inf)]


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    total = 0
    out = []
    for le, n in zip(_LE, counts, strict=True):
        total += n
        out.append((le, float(total)))
    return out


class Metrics:
    """The metric families camsvc exports, and the request figures get_metrics reports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Request counts are plain Python on the hot path and become families at scrape time.
        self.code_counts: dict[tuple[str, int], int] = {}
        self.method_stats: dict[str, _MethodStats] = {}
        r.register(_RequestCollector(self))
        self.active_connections = Gauge(
            "camera_service_active_connections", "Open WebSocket connections", registry=r
        )
        self.snapshots = Counter(
            "camera_service_snapshots", "Successful snapshots", ["device"], registry=r
        )
        self.snapshot_duration = Histogram(
            "camera_service_snapshot_duration_seconds", "Snapshot capture time",
            buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.recordings_active = Gauge(
            "camera_service_recordings_active", "Active recordings", registry=r
        )
        self.cameras = Gauge("camera_service_cameras", "Cameras per status", ["status"], registry=r)
        self.notifications_dropped = Counter(
            "camera_service_notifications_dropped",
            "Notifications dropped for slow consumers",
            registry=r,
        )
        ProcessCollector(registry=r)
        self.request_count = 0
        self.error_count = 0
        self._refreshers: list[Callable[[], None]] = []

    def observe_request(self, method: str, code: int, seconds: float) -> None:
        """Count one answered request (the dispatcher's observer; on every request's path)."""
        st = self.method_stats.get(method)
        if st is None:
            st = self.method_stats[method] = _MethodStats()
        st.buckets[bisect_left(BUCKETS, seconds)] += 1
        st.count += 1
        st.sum_s += seconds
        st.times.append(seconds * 1000)
        key = (method, code)
        self.code_counts[key] = self.code_counts.get(key, 0) + 1
        self.request_count += 1
        if code:
            self.error_count += 1

    def bucket_counts(self) -> list[int]:
        """Cumulative response-time bucket counts over all methods (BUCKETS, then +Inf)."""
        totals = [0] * (len(BUCKETS) + 1)
        for st in self.method_stats.values():
            for i, n in enumerate(st.buckets):
                totals[i] += n
        return [sum(totals[: i + 1]) for i in range(len(totals))]

    def observe_snapshot(self, device: str, seconds: float) -> None:
        """Count one successful snapshot."""
        self.snapshots.labels(device).inc()
        self.snapshot_duration.observe(seconds)

    def notification_dropped(self) -> None:
        """Count one notification dropped for a slow client."""
        self.notifications_dropped.inc()

    def method_times(self) -> dict[str, MethodTimes]:
        """p50/p95/p99 per method over its last WINDOW calls."""
        out: dict[str, MethodTimes] = {}
        for method, st in sorted(self.method_stats.items()):
            ordered = sorted(st.times)
            out[method] = MethodTimes(
                len(ordered),
                round(_percentile(ordered, 0.50), 3),
                round(_percentile(ordered, 0.95), 3),
                round(_percentile(ordered, 0.99), 3),
            )
        return out

    def on_render(self, refresh: Callable[[], None]) -> None:
        """Run `refresh` before each render (to set gauges from live state)."""
        self._refreshers.append(refresh)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        for refresh in self._refreshers:
            refresh()
        return generate_latest(self.registry)
