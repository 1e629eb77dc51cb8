"""In-service alerts: thresholds with durations, the anomaly detector, and their reporting."""

from __future__ import annotations

import itertools
import math

import msgspec
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from camsvc.config import AlertsConfig
from camsvc.observability.alerts import (
    ALERTS,
    AlertEvaluator,
    AlertService,
    Figures,
    LatencyWindow,
    RollingBaseline,
    histogram_quantile,
)
from camsvc.observability.health import HealthMonitor, SystemHealth
from camsvc.observability.metrics import Metrics
from camsvc.observability.resources import ResourceSample, ResourceSampler
from tests.fixtures.http import http_request

GiB = 1024**3
STEP_S = 10.0  # evaluation interval the series below use


def run_series(
    evaluator: AlertEvaluator, series: list[Figures], start: float = 0.0
) -> list[tuple[float, str, str]]:
    """Feed one reading every STEP_S; (time, alert, state) of every transition."""
    out = []
    for i, figures in enumerate(series):
        now = start + i * STEP_S
        out.extend((now, t.alert, t.state) for t in evaluator.evaluate(now, figures))
    return out


class TestHistogramQuantile:
    """The Prometheus interpolation the rules also use."""

    def test_interpolates_within_bucket(self):
        """Half the observations in (0, 1], half in (1, 2]: p95 lies at 0.9 of the second."""
        assert histogram_quantile(0.95, [1, 2, math.inf], [50, 100, 100]) == pytest.approx(1.9)

    def test_empty_is_none(self):
        """No observations: no quantile."""
        assert histogram_quantile(0.95, [1, math.inf], [0, 0]) is None

    def test_inf_bucket_gives_highest_finite_bound(self):
        """Observations above the last finite bound report that bound."""
        assert histogram_quantile(0.95, [1, 10, math.inf], [0, 0, 5]) == 10


class TestLatencyWindow:
    """Windowed figures from cumulative counters."""

    def test_window_differences(self):
        """Only what was counted within the window counts."""
        window = LatencyWindow(60, [0.1, 1, math.inf])
        assert window.update(0, [0, 0, 0], 0, 0).p95_s is None
        # 100 fast calls in the first minute.
        w = window.update(60, [100, 100, 100], 100, 1)
        assert w.requests == 100 and w.errors == 1 and w.p95_s == pytest.approx(0.095)
        # The next minute: 100 slow ones; the fast ones have left the window.
        w = window.update(120, [100, 200, 200], 200, 1)
        assert w.requests == 100 and w.errors == 0
        assert w.p95_s == pytest.approx(0.1 + 0.9 * 0.95)
        # Nothing new: empty window.
        assert window.update(180, [100, 200, 200], 200, 1).p95_s is None


THRESHOLDS = [
    # alert, figures above, figures below, for_s (defaults of the spec)
    ("response_time_warning", Figures(response_time_s=3.0), Figures(response_time_s=1.0), 300),
    ("response_time_critical", Figures(response_time_s=6.0), Figures(response_time_s=0.1), 120),
    ("cpu_high", Figures(cpu_percent=85.0), Figures(cpu_percent=30.0), 300),
    ("memory_high", Figures(rss_bytes=3 * GiB), Figures(rss_bytes=GiB), 300),
    ("disk_high", Figures(disk_percent=95.0), Figures(disk_percent=50.0), 60),
]


class TestThresholds:
    """Each threshold alert with the spec's defaults, on a controlled clock."""

    @pytest.mark.parametrize(("alert", "high", "low", "for_s"), THRESHOLDS)
    def test_fires_after_duration_and_resolves(self, alert, high, low, for_s):
        """Pending for `for_s`, firing at `for_s`, resolved at the first reading below."""
        ev = AlertEvaluator(AlertsConfig())
        series = [high] * (int(for_s / STEP_S) + 10) + [low] * 3
        events = [e for e in run_series(ev, series) if e[1] == alert]
        resolve_at = (int(for_s / STEP_S) + 10) * STEP_S
        assert events == [(for_s, alert, "firing"), (resolve_at, alert, "resolved")]

    @pytest.mark.parametrize(("alert", "high", "low", "for_s"), THRESHOLDS)
    def test_dip_restarts_the_duration(self, alert, high, low, for_s):
        """One reading below the threshold before `for_s` passed restarts the clock."""
        ev = AlertEvaluator(AlertsConfig())
        n = int(for_s / STEP_S)
        series = [high] * n + [low] + [high] * (n + 1)
        events = [e for e in run_series(ev, series) if e[1] == alert]
        assert events == [((2 * n + 1) * STEP_S, alert, "firing")]

    def test_status_and_firing_list(self):
        """A warning degrades, a critical one makes the component unhealthy."""
        ev = AlertEvaluator(AlertsConfig())
        assert ev.status() == "healthy"
        ev.evaluate(0, Figures(cpu_percent=99))
        ev.evaluate(300, Figures(cpu_percent=99))
        assert ev.status() == "degraded"
        assert [a.alert for a in ev.firing()] == ["cpu_high"]
        ev.evaluate(310, Figures(cpu_percent=99, disk_percent=99))
        ev.evaluate(370, Figures(cpu_percent=99, disk_percent=99))
        assert ev.status() == "unhealthy"
        assert {a.alert for a in ev.firing()} == {"cpu_high", "disk_high"}

    def test_thresholds_configurable(self):
        """Thresholds and durations come from the config."""
        ev = AlertEvaluator(AlertsConfig(cpu_percent=10, cpu_for=0))
        transitions = ev.evaluate(0, Figures(cpu_percent=11))
        assert [(t.alert, t.state, t.threshold) for t in transitions] == [
            ("cpu_high", "firing", 10)
        ]

    def test_no_requests_resolves_response_time(self):
        """A window without requests has no response time: the alert resolves."""
        ev = AlertEvaluator(AlertsConfig())
        run_series(ev, [Figures(response_time_s=3.0)] * 31)
        assert ev.evaluate(310, Figures())[0].state == "resolved"


def response_series(values: list[float], requests: int = 100) -> list[Figures]:
    """One reading per STEP_S for each per-minute p95 value (6 readings per minute)."""
    return [Figures(response_time_s=v, requests=requests) for v in values for _ in range(6)]


def error_series(ratios: list[float], requests: int = 1000) -> list[Figures]:
    """Error ratios per minute, as readings every STEP_S."""
    return [
        Figures(response_time_s=0.01, requests=requests, errors=round(r * requests))
        for r in ratios
        for _ in range(6)
    ]


def anomalies(events):
    return [(t, a, s) for t, a, s in events if a.endswith("_anomaly")]


class TestRollingBaseline:
    """One sample per bucket, median over the window, armed after min_samples."""

    def test_bucketing_and_arming(self):
        """Six readings a minute give one sample a minute; none counts before arming."""
        b = RollingBaseline(60, 3600, 15)
        for i in range(14 * 6):
            b.offer(i * 10, 1.0)
        assert b.samples == 14 and b.value is None
        b.offer(14 * 60, 1.0)
        assert b.value == 1.0

    def test_window_expires_old_samples(self):
        """Samples older than the window leave it."""
        b = RollingBaseline(60, 600, 1)
        for minute in range(30):
            b.offer(minute * 60, float(minute))
        assert b.samples == 10 and b.value == pytest.approx(24.5)


class TestResponseAnomaly:
    """Response time above 2x the baseline (median of one-minute samples over an hour)."""

    def test_steady_series_never_fires(self):
        """Three hours of noisy but steady latency: nothing."""
        values = [0.1 * (1 + 0.2 * math.sin(i)) for i in range(180)]
        assert anomalies(run_series(AlertEvaluator(AlertsConfig()), response_series(values))) == []

    def test_step_up_fires_then_becomes_the_baseline(self):
        """A 3x step fires after anomaly_for; once it fills half the window it is normal."""
        values = [0.1] * 60 + [0.3] * 60
        events = anomalies(run_series(AlertEvaluator(AlertsConfig()), response_series(values)))
        assert [e[1:] for e in events] == [
            ("response_time_anomaly", "firing"),
            ("response_time_anomaly", "resolved"),
        ]
        step_at = 60 * 60
        assert events[0][0] == step_at + 120
        # The median moves once the higher samples are the majority of the last hour.
        assert step_at + 25 * 60 <= events[1][0] <= step_at + 35 * 60

    def test_spike_shorter_than_duration_does_not_fire(self):
        """A one-minute 10x spike is shorter than anomaly_for and leaves the baseline alone."""
        ev = AlertEvaluator(AlertsConfig())
        values = [0.1] * 60 + [1.0] + [0.1] * 30
        assert anomalies(run_series(ev, response_series(values))) == []
        assert ev.response_baseline.value == pytest.approx(0.1)

    def test_slow_drift_does_not_fire(self):
        """Latency growing 1 % a minute for three hours (6x overall) never doubles its median."""
        values = [0.1 * 1.01**i for i in range(180)]
        assert anomalies(run_series(AlertEvaluator(AlertsConfig()), response_series(values))) == []

    def test_not_armed_before_min_buckets(self):
        """A step within the first anomaly_min_buckets minutes is not judged."""
        values = [0.1] * 5 + [1.0] * 9
        assert anomalies(run_series(AlertEvaluator(AlertsConfig()), response_series(values))) == []

    def test_floor(self):
        """A tiny baseline is taken as anomaly_response_floor_s: 1 ms to 30 ms is no anomaly."""
        values = [0.001] * 30 + [0.03] * 10
        assert anomalies(run_series(AlertEvaluator(AlertsConfig()), response_series(values))) == []

    def test_too_few_requests_are_ignored(self):
        """Windows with fewer than anomaly_min_requests requests neither sample nor fire."""
        series = response_series([0.1] * 30) + response_series([1.0] * 10, requests=5)
        ev = AlertEvaluator(AlertsConfig())
        assert anomalies(run_series(ev, series)) == []

    def test_disabled(self):
        """anomaly_enabled: false removes both anomaly alerts."""
        ev = AlertEvaluator(AlertsConfig(anomaly_enabled=False))
        values = [0.1] * 60 + [1.0] * 10
        assert anomalies(run_series(ev, response_series(values))) == []


class TestErrorAnomaly:
    """Error ratio above 3x the baseline (baseline at least anomaly_error_floor)."""

    def test_steady_errors_never_fire(self):
        """2 % errors, steady: nothing."""
        ev = AlertEvaluator(AlertsConfig())
        assert anomalies(run_series(ev, error_series([0.02] * 120))) == []

    def test_step_up_fires_and_resolves(self):
        """2 % to 10 % fires after anomaly_for; back to 2 % resolves."""
        ev = AlertEvaluator(AlertsConfig())
        events = anomalies(run_series(ev, error_series([0.02] * 30 + [0.10] * 5 + [0.02] * 5)))
        assert events == [
            (30 * 60 + 120, "error_rate_anomaly", "firing"),
            (35 * 60, "error_rate_anomaly", "resolved"),
        ]

    def test_below_factor_does_not_fire(self):
        """2 % to 5 % is below 3x."""
        ev = AlertEvaluator(AlertsConfig())
        assert anomalies(run_series(ev, error_series([0.02] * 30 + [0.05] * 10))) == []

    def test_zero_baseline_uses_floor(self):
        """No errors at all, then 2 %: under 3x the 1 % floor; 5 % is above it."""
        ev = AlertEvaluator(AlertsConfig())
        assert anomalies(run_series(ev, error_series([0.0] * 30 + [0.02] * 10))) == []
        ev = AlertEvaluator(AlertsConfig())
        events = anomalies(run_series(ev, error_series([0.0] * 30 + [0.05] * 10)))
        assert [e[1:] for e in events] == [("error_rate_anomaly", "firing")]

    def test_spike_does_not_fire(self):
        """A one-minute burst of errors is shorter than anomaly_for."""
        ev = AlertEvaluator(AlertsConfig())
        assert anomalies(run_series(ev, error_series([0.01] * 30 + [0.5] + [0.01] * 10))) == []


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _sample(fams, family: str, name: str, labels: dict[str, str]) -> float:
    for s in fams[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError((name, labels))


class FakeSampler(ResourceSampler):
    """A sampler whose readings the test sets."""

    def __init__(self) -> None:
        super().__init__(lambda: "/")
        self.latest = ResourceSample()

    def sample(self) -> ResourceSample:
        return self.latest


class TestAlertService:
    """Logging, counting and health reporting of transitions."""

    def _service(self, **cfg):
        metrics, sampler, health, events = Metrics(), FakeSampler(), HealthMonitor(), []
        svc = AlertService(
            AlertsConfig(**cfg), metrics, sampler, health, lambda t, d: events.append((t, d))
        )
        return svc, metrics, sampler, health, events

    def test_transitions_logged_counted_and_published(self):
        """Firing and resolving: a log event each, the counter and gauge, a health event."""
        svc, metrics, sampler, _, events = self._service(memory_for=60)
        sampler.latest = ResourceSample(rss_bytes=3 * GiB)
        with capture_logs() as logs:
            assert svc.tick(0) == []
            [t] = svc.tick(60)
            assert (t.alert, t.state) == ("memory_high", "firing")
            sampler.latest = ResourceSample(rss_bytes=GiB)
            [t] = svc.tick(70)
            assert (t.alert, t.state, t.active_s) == ("memory_high", "resolved", 10)
        assert [(e["event"], e["alert"], e["log_level"]) for e in logs] == [
            ("alert_firing", "memory_high", "warning"),
            ("alert_resolved", "memory_high", "info"),
        ]
        assert events == [
            ("system.health", SystemHealth("degraded", {"alerts": "degraded"})),
            ("system.health", SystemHealth("healthy", {"alerts": "healthy"})),
        ]
        fams = _families(metrics.render().decode())
        labels = {"alert": "memory_high", "severity": "warning"}
        assert _sample(fams, "camera_service_alerts", "camera_service_alerts_total", labels) == 1
        firing = "camera_service_alerts_firing"
        assert _sample(fams, firing, firing, {"alert": "memory_high"}) == 0
        # Every alert has its series from the start, and no other label value exists.
        assert {s.labels["alert"] for s in fams[firing].samples} == set(ALERTS)

    def test_component_details_while_firing(self):
        """The `alerts` component names the firing alerts; critical makes it unhealthy."""
        svc, _, sampler, health, _ = self._service(disk_for=0)
        sampler.latest = ResourceSample(disk_percent=97.5)
        svc.tick(0)
        [component] = [c for c in health.report().components if c.name == "alerts"]
        assert component.status == "unhealthy" and component.message == "disk_high"
        assert component.details["firing"][0]["value"] == 97.5
        # The overall status is degraded: `alerts` is not one of the critical components.
        assert health.report().status == "degraded"

    def test_response_time_from_metrics(self):
        """The response-time figure is the p95 of the requests answered within the window."""
        svc, metrics, _, _, _ = self._service(response_time_warning_for=0)
        svc.tick(0)
        for _ in range(100):
            metrics.observe_request("ping", 0, 0.003)
        f = svc.figures(10)
        assert f.requests == 100 and 0.001 < f.response_time_s <= 0.005
        for _ in range(100):
            metrics.observe_request("take_snapshot", -32603, 3.0)
        [t] = svc.tick(20)
        assert (t.alert, t.state) == ("response_time_warning", "firing")
        # A minute later, with no new requests, the window is empty: resolved.
        assert [(t.alert, t.state) for t in svc.tick(90)] == [("response_time_warning", "resolved")]

    def test_publish_drops_repeated_health(self):
        """Equal consecutive system.health data is published once; other topics pass."""
        svc, *_, events = self._service()
        data = SystemHealth("healthy", {"alerts": "healthy"})
        svc.publish("system.health", data)
        svc.publish("system.health", data)
        svc.publish("system.startup", {"x": 1})
        svc.publish("system.startup", {"x": 1})
        assert len(events) == 3

    def test_disabled_registers_nothing(self):
        """alerts.enabled: false: no component, run returns."""
        _, _, _, health, _ = self._service(enabled=False)
        assert health.report().components == []


async def _until_alerts(client, status: str) -> list[dict]:
    """system.health events up to the first whose `alerts` component is `status`.

    Other components may change meanwhile (the listener coming up, MediaMTX checks)."""
    seen = [await client.recv()]
    while seen[-1]["params"]["data"]["components"].get("alerts") != status:
        assert len(seen) < 8, seen
        seen.append(await client.recv())
    return seen


class TestEndToEnd:
    """The real loop in the real service, on a mock clock, with injected resource figures."""

    async def test_alert_reaches_subscriber(self, start_service, connect, mock_clock):
        """Memory above the threshold for memory_for: a system.health event with the
        `alerts` component degraded; back below: healthy again; metrics count it."""
        svc = await start_service(alerts={"interval": 10, "memory_bytes": GiB})
        svc.app.sampler.sample = lambda: svc.app.sampler.latest  # readings only from the test
        svc.app.sampler.latest = ResourceSample(rss_bytes=3 * GiB)
        client = await connect(svc, "viewer")
        await client.call("subscribe_events", {"topics": ["system.health"]})
        for _ in range(29):  # 290 s: pending, not yet firing (memory_for 300 s)
            mock_clock.jump(10)
            await trio.testing.wait_all_tasks_blocked()
        assert svc.app.alerts.evaluator.firing() == []
        for _ in range(2):
            mock_clock.jump(10)
            await trio.testing.wait_all_tasks_blocked()
        seen = await _until_alerts(client, "degraded")
        event = seen[-1]
        assert event["method"] == "event" and event["params"]["topic"] == "system.health"
        data = event["params"]["data"]
        assert set(data) == {"status", "components"}
        assert data["status"] in ("degraded", "unhealthy")
        svc.app.sampler.latest = ResourceSample(rss_bytes=GiB)
        mock_clock.jump(10)
        await trio.testing.wait_all_tasks_blocked()
        seen += await _until_alerts(client, "healthy")
        resp = await http_request(svc.ports.main, "/metrics")
        fams = _families(resp.body.decode())
        labels = {"alert": "memory_high", "severity": "warning"}
        assert _sample(fams, "camera_service_alerts", "camera_service_alerts_total", labels) == 1
        detailed = await http_request(svc.ports.main, "/health/detailed")
        detailed = msgspec.json.decode(detailed.body)
        assert "alerts" in {c["name"] for c in detailed["components"]}
        # One event per change, although the health watcher noticed the changes too.
        mock_clock.jump(10)
        await trio.testing.wait_all_tasks_blocked()
        await client.call("ping")  # any notification sent before the reply lands in pending
        seen += list(client.pending)
        datas = [e["params"]["data"] for e in seen]
        assert all(a != b for a, b in itertools.pairwise(datas)), datas
