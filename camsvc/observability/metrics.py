"""Prometheus metrics (API.md §11) on the service's own registry, and request statistics.

Labels are bounded by construction: `method` is a registered method name, `unknown` or
`invalid`; `code` an error code; `device` a camera id within `camera.device_range`; `status`
a camera status. Nothing per file, per user or per connection becomes a label.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import msgspec
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

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


_Children = tuple[Counter, Histogram, Counter | None, deque[float]]


def _percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


class Metrics:
    """The metric families camsvc exports, and the request figures get_metrics reports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "camera_service_requests", "Requests answered", ["method", "code"], registry=r
        )
        self.response_time = Histogram(
            "camera_service_response_time_seconds", "Request handling time", ["method"],
            buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.active_connections = Gauge(
            "camera_service_active_connections", "Open WebSocket connections", registry=r
        )
        self.errors = Counter(
            "camera_service_errors", "Error replies", ["method", "code"], registry=r
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
        self._times: dict[str, deque[float]] = {}
        self._children: dict[tuple[str, int], _Children] = {}
        self._refreshers: list[Callable[[], None]] = []

    def observe_request(self, method: str, code: int, seconds: float) -> None:
        """Count one answered request (the dispatcher's observer; on every request's path)."""
        children = self._children.get((method, code))
        if children is None:
            children = self._children[method, code] = self._children_of(method, code)
        requests, histogram, errors, times = children
        self.request_count += 1
        requests.inc()
        histogram.observe(seconds)
        if errors is not None:
            self.error_count += 1
            errors.inc()
        times.append(seconds * 1000)

    def _children_of(self, method: str, code: int) -> _Children:
        # Looking labelled children up once per (method, code) keeps labels() off the hot path.
        times = self._times.get(method)
        if times is None:
            times = self._times[method] = deque(maxlen=WINDOW)
        label = str(code)
        errors = self.errors.labels(method, label) if code else None
        return (
            self.requests.labels(method, label),
            self.response_time.labels(method),
            errors,
            times,
        )

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
        for method, times in sorted(self._times.items()):
            ordered = sorted(times)
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
