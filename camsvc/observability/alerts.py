"""Alerts evaluated in the service: thresholds held for a duration, and anomalies against a
rolling baseline (docs/observability.md).

The core is pure: `AlertEvaluator.evaluate(now, figures)` takes a timestamp and a `Figures`
reading and returns the `Transition`s (firing, resolved) it causes; `LatencyWindow` turns the
cumulative request histogram into windowed figures. Neither reads a clock or does I/O, so
tests drive them with any timestamps and injected figures. `AlertService` is the thin shell:
every `alerts.interval` it reads Metrics and the ResourceSampler, evaluates, then logs,
counts (`camera_service_alerts_total`, `camera_service_alerts_firing`) and reports through the
`alerts` health component, which the `system.health` topic carries (API.md §9.3). It must
not touch the request path: it only reads counters the dispatcher already keeps.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec
import structlog
import trio
from prometheus_client import Counter, Gauge

from camsvc.config import AlertsConfig
from camsvc.observability.health import ComponentHealth, HealthMonitor, SystemHealth
from camsvc.observability.metrics import BUCKETS, Metrics
from camsvc.observability.resources import ResourceSampler

__all__ = [
    "ALERTS",
    "ActiveAlert",
    "AlertEvaluator",
    "AlertService",
    "Figures",
    "LatencyWindow",
    "RollingBaseline",
    "Transition",
    "WindowFigures",
    "histogram_quantile",
]

log = structlog.get_logger("camsvc.alerts")

Severity = Literal["warning", "critical"]
State = Literal["firing", "resolved"]

# Every alert name and its severity: the only label values the alert metrics ever get.
ALERTS: dict[str, Severity] = {
    "response_time_warning": "warning",
    "response_time_critical": "critical",
    "cpu_high": "warning",
    "memory_high": "warning",
    "disk_high": "critical",
    "response_time_anomaly": "warning",
    "error_rate_anomaly": "warning",
}


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    """One reading of everything the alerts look at."""

    response_time_s: float | None = None  # p95 over the response-time window; None: no calls
    requests: int = 0  # requests answered within the window
    errors: int = 0  # error replies within the window
    cpu_percent: float = 0.0  # this process, % of one core
    rss_bytes: int = 0
    disk_percent: float = 0.0  # recordings filesystem


class Transition(msgspec.Struct, frozen=True):
    """An alert starting to fire or resolving at `at`."""

    alert: str
    severity: Severity
    state: State
    value: float | None
    threshold: float
    at: float
    active_s: float  # firing: how long the condition had held; resolved: how long it fired


class ActiveAlert(msgspec.Struct, frozen=True):
    """A firing alert, as the `alerts` health component details it."""

    alert: str
    severity: Severity
    value: float | None
    threshold: float
    since: float


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated as Prometheus does; None if empty.

    `bounds` are the upper bounds in increasing order, the last one `inf`; `counts` the
    cumulative counts per bound.
    """
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return prev_bound  # the highest finite bound, as histogram_quantile
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


class WindowFigures(msgspec.Struct, frozen=True):
    """Request figures over the last window."""

    p95_s: float | None
    requests: int
    errors: int


class _Snapshot(msgspec.Struct, frozen=True):
    at: float
    counts: tuple[float, ...]
    requests: int
    errors: int


class LatencyWindow:
    """Windowed p95, request and error counts from cumulative counters (pure, no clock).

    Each `update` stores a snapshot of the cumulative histogram buckets and counters and
    answers the difference to the newest snapshot at least `window_s` old (or the oldest one
    while fewer than `window_s` have passed), like Prometheus' `rate(...[window])`.
    """

    def __init__(self, window_s: float, bounds: Sequence[float]) -> None:
        self.window_s = window_s
        self.bounds = tuple(bounds)
        self._snaps: deque[_Snapshot] = deque()

    def update(
        self, now: float, counts: Sequence[float], requests: int, errors: int
    ) -> WindowFigures:
        """Record the counters at `now`; return the figures over the window ending now."""
        snap = _Snapshot(now, tuple(counts), requests, errors)
        self._snaps.append(snap)
        while len(self._snaps) >= 2 and self._snaps[1].at <= now - self.window_s:
            self._snaps.popleft()
        base = self._snaps[0]
        delta = [c - b for c, b in zip(snap.counts, base.counts, strict=True)]
        return WindowFigures(
            histogram_quantile(0.95, self.bounds, delta),
            snap.requests - base.requests,
            snap.errors - base.errors,
        )


class RollingBaseline:
    """Median of one sample per `bucket_s` over the last `window_s`; armed after `min_samples`.

    The median ignores short spikes; a lasting change becomes the new baseline once it fills
    half the window.
    """

    def __init__(self, bucket_s: float, window_s: float, min_samples: int) -> None:
        self.bucket_s = bucket_s
        self.window_s = window_s
        self.min_samples = min_samples
        self._samples: deque[tuple[float, float]] = deque()
        self._next_at = -math.inf

    def offer(self, now: float, value: float | None) -> None:
        """Keep `value` if no sample was kept in the current bucket yet (None is skipped)."""
        while self._samples and self._samples[0][0] <= now - self.window_s:
            self._samples.popleft()
        if value is None or now < self._next_at:
            return
        self._samples.append((now, value))
        self._next_at = now + self.bucket_s

    @property
    def samples(self) -> int:
        """How many samples the baseline holds now."""
        return len(self._samples)

    @property
    def value(self) -> float | None:
        """The baseline, or None until `min_samples` samples are held."""
        if len(self._samples) < self.min_samples:
            return None
        return statistics.median(v for _, v in self._samples)


class _Rule:
    """Condition state of one alert: pending since when, firing since when."""

    def __init__(self, name: str, for_s: float) -> None:
        self.name = name
        self.severity = ALERTS[name]
        self.for_s = for_s
        self.pending_since: float | None = None
        self.firing_since: float | None = None
        self.value: float | None = None
        self.threshold = 0.0

    def step(self, now: float, value: float | None, threshold: float | None) -> Transition | None:
        """Advance with one reading; the transition it causes, if any."""
        self.value = value
        if threshold is not None:
            self.threshold = threshold
        breached = value is not None and threshold is not None and value > threshold
        if breached:
            if self.pending_since is None:
                self.pending_since = now
            if self.firing_since is None and now - self.pending_since >= self.for_s:
                self.firing_since = now
                return Transition(
                    self.name, self.severity, "firing", value, self.threshold, now,
                    round(now - self.pending_since, 3),
                )  # fmt: skip
            return None
        self.pending_since = None
        if self.firing_since is not None:
            fired_for = now - self.firing_since
            self.firing_since = None
            return Transition(
                self.name, self.severity, "resolved", value, self.threshold, now,
                round(fired_for, 3),
            )  # fmt: skip
        return None


class AlertEvaluator:
    """The alert rules of one AlertsConfig; feed it readings, get transitions (pure)."""

    def __init__(self, config: AlertsConfig) -> None:
        self.config = c = config
        self._thresholds: list[tuple[_Rule, Callable[[Figures], float | None], float]] = [
            (_Rule("response_time_warning", c.response_time_warning_for),
             lambda f: f.response_time_s, c.response_time_warning_s),
            (_Rule("response_time_critical", c.response_time_critical_for),
             lambda f: f.response_time_s, c.response_time_critical_s),
            (_Rule("cpu_high", c.cpu_for), lambda f: f.cpu_percent, c.cpu_percent),
            (_Rule("memory_high", c.memory_for), lambda f: float(f.rss_bytes), c.memory_bytes),
            (_Rule("disk_high", c.disk_for), lambda f: f.disk_percent, c.disk_percent),
        ]  # fmt: skip
        self.response_baseline = RollingBaseline(
            c.anomaly_bucket, c.anomaly_baseline_window, c.anomaly_min_buckets
        )
        self.error_baseline = RollingBaseline(
            c.anomaly_bucket, c.anomaly_baseline_window, c.anomaly_min_buckets
        )
        self._anomalies: list[tuple[_Rule, Callable[[Figures], float | None], RollingBaseline,
                                    float, float]] = [
            (_Rule("response_time_anomaly", c.anomaly_for), self._anomaly_response,
             self.response_baseline, c.anomaly_response_factor, c.anomaly_response_floor_s),
            (_Rule("error_rate_anomaly", c.anomaly_for), self.error_ratio,
             self.error_baseline, c.anomaly_error_factor, c.anomaly_error_floor),
        ] if c.anomaly_enabled else []  # fmt: skip

    def error_ratio(self, figures: Figures) -> float | None:
        """Errors per request in the window; None below `anomaly_min_requests` requests."""
        if figures.requests < self.config.anomaly_min_requests:
            return None
        return figures.errors / figures.requests

    def _anomaly_response(self, figures: Figures) -> float | None:
        if figures.requests < self.config.anomaly_min_requests:
            return None
        return figures.response_time_s

    def evaluate(self, now: float, figures: Figures) -> list[Transition]:
        """Advance every rule with the reading taken at `now`; the transitions, in rule order."""
        out: list[Transition] = []
        for rule, figure, threshold in self._thresholds:
            if t := rule.step(now, figure(figures), threshold):
                out.append(t)
        for rule, figure, baseline, factor, floor in self._anomalies:
            value = figure(figures)
            base = baseline.value
            limit = None if base is None else factor * max(base, floor)
            if t := rule.step(now, value, limit):
                out.append(t)
            baseline.offer(now, value)
        return out

    def firing(self) -> list[ActiveAlert]:
        """The alerts firing now."""
        rules = [r for r, *_ in self._thresholds] + [r for r, *_ in self._anomalies]
        return [
            ActiveAlert(r.name, r.severity, r.value, r.threshold, r.firing_since)
            for r in rules
            if r.firing_since is not None
        ]

    def status(self) -> Literal["healthy", "degraded", "unhealthy"]:
        """`unhealthy` while a critical alert fires, `degraded` while a warning does."""
        severities = {a.severity for a in self.firing()}
        if "critical" in severities:
            return "unhealthy"
        return "degraded" if severities else "healthy"


Publish = Callable[[str, Any], None]


class AlertService:
    """Feeds the evaluator from Metrics and the ResourceSampler and reports its transitions."""

    def __init__(
        self,
        config: AlertsConfig,
        metrics: Metrics,
        sampler: ResourceSampler,
        health: HealthMonitor,
        publish: Publish,
    ) -> None:
        self.config = config
        self.evaluator = AlertEvaluator(config)
        self._metrics = metrics
        self._sampler = sampler
        self._health = health
        self._publish = publish
        self._last_health: SystemHealth | None = None
        self.window = LatencyWindow(config.response_time_window, [*BUCKETS, math.inf])
        r = metrics.registry
        self.alerts_total = Counter(
            "camera_service_alerts", "Alerts that started firing", ["alert", "severity"],
            registry=r,
        )  # fmt: skip
        self.alerts_firing = Gauge(
            "camera_service_alerts_firing", "1 while the alert fires", ["alert"], registry=r
        )
        self.disk_usage = Gauge(
            "camera_service_disk_usage_percent", "Usage of the recordings filesystem", registry=r
        )
        for name, severity in ALERTS.items():
            self.alerts_total.labels(name, severity)
            self.alerts_firing.labels(name).set(0)
        metrics.on_render(lambda: self.disk_usage.set(self._sampler.latest.disk_percent))
        if config.enabled:
            health.register("alerts", self.component)

    # -- health -------------------------------------------------------------------------

    def component(self) -> ComponentHealth:
        """The `alerts` component: its status follows the most severe firing alert."""
        firing = self.evaluator.firing()
        message = ", ".join(a.alert for a in firing) if firing else "no alert firing"
        return ComponentHealth(
            "alerts",
            self.evaluator.status(),
            message,
            details={"firing": msgspec.to_builtins(firing)},
        )

    def publish(self, topic: str, data: Any) -> None:
        """The bus's publish, dropping a `system.health` event equal to the previous one.

        The health watcher and this service both report health changes; this keeps one
        event per change whoever notices it first.
        """
        if topic == "system.health":
            if data == self._last_health:
                return
            self._last_health = data
        self._publish(topic, data)

    # -- evaluation ---------------------------------------------------------------------

    def figures(self, now: float) -> Figures:
        """Read Metrics and the sampler at `now` (advances the response-time window)."""
        counts = [float(n) for n in self._metrics.bucket_counts()]
        win = self.window.update(
            now, counts, self._metrics.request_count, self._metrics.error_count
        )
        res = self._sampler.latest
        return Figures(
            response_time_s=win.p95_s,
            requests=win.requests,
            errors=win.errors,
            cpu_percent=res.process_cpu_percent,
            rss_bytes=res.rss_bytes,
            disk_percent=res.disk_percent,
        )

    def tick(self, now: float) -> list[Transition]:
        """One evaluation at `now`: log, count and report every transition."""
        transitions = self.evaluator.evaluate(now, self.figures(now))
        for t in transitions:
            if t.state == "firing":
                self.alerts_total.labels(t.alert, t.severity).inc()
                self.alerts_firing.labels(t.alert).set(1)
                log.warning(
                    "alert_firing", alert=t.alert, severity=t.severity, value=t.value,
                    threshold=t.threshold, pending_s=t.active_s,
                )  # fmt: skip
            else:
                self.alerts_firing.labels(t.alert).set(0)
                log.info(
                    "alert_resolved", alert=t.alert, severity=t.severity, value=t.value,
                    threshold=t.threshold, fired_s=t.active_s,
                )  # fmt: skip
        if transitions:
            report = self._health.report()
            self.publish(
                "system.health",
                SystemHealth(report.status, {c.name: c.status for c in report.components}),
            )
        return transitions

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Evaluate every `alerts.interval` seconds until cancelled (returns if disabled)."""
        task_status.started()
        if not self.config.enabled:
            return
        self.tick(trio.current_time())
        while True:
            await trio.sleep(self.config.interval)
            self.tick(trio.current_time())
