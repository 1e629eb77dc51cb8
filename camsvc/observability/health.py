"""Component health and the overall rule of API.md §10.2.

Services register a check per component; the monitor evaluates them on demand (the checks
are cheap: counters and a statvfs), so health routes always report the present state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec
import trio

from camsvc import __version__
from camsvc.timefmt import utc_timestamp

__all__ = [
    "WATCH_INTERVAL_S",
    "ComponentHealth",
    "HealthMonitor",
    "HealthReport",
    "overall_status",
]

Status = Literal["healthy", "degraded", "unhealthy"]
Lifecycle = Literal["STARTING", "RUNNING", "STOPPED"]

# Components whose failure makes the whole service unhealthy (API.md §10.2).
CRITICAL = frozenset({"websocket_server", "camera_monitor", "storage"})


class ComponentHealth(msgspec.Struct, frozen=True):
    """One component's state as a check reports it."""

    name: str
    status: Status
    message: str
    lifecycle: Lifecycle = "RUNNING"
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    last_checked: str = ""

    @property
    def rpc_state(self) -> str:
        """The get_status state: RUNNING, STOPPED, ERROR or STARTING."""
        if self.lifecycle != "RUNNING":
            return self.lifecycle
        return "ERROR" if self.status == "unhealthy" else "RUNNING"


class HealthReport(msgspec.Struct, frozen=True):
    """Every component's state and the overall status at one moment."""

    status: Status
    components: list[ComponentHealth]
    uptime_s: float


def overall_status(components: list[ComponentHealth]) -> Status:
    """Unhealthy if a critical component is; degraded if any is degraded or another unhealthy."""
    status: Status = "healthy"
    for c in components:
        if c.status == "unhealthy" and c.name in CRITICAL:
            return "unhealthy"
        if c.status != "healthy":
            status = "degraded"
    return status


Check = Callable[[], ComponentHealth]
# How often component states are re-checked for `system.health` change events.
WATCH_INTERVAL_S = 2.0


class SystemHealth(msgspec.Struct, frozen=True):
    """Data of the `system.health` topic."""

    status: Status
    components: dict[str, Status]


class Startup(msgspec.Struct, frozen=True):
    """Data of the `system.startup` topic."""

    version: str
    startup_time: str


_STATUSES = ("healthy", "degraded", "unhealthy")


class HealthBody(msgspec.Struct, frozen=True):
    """`/health`."""

    status: Status
    timestamp: str
    version: str
    uptime_seconds: float


class ReadyBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """`/health/ready`; `status` only when not ready."""

    ready: bool
    timestamp: str
    message: str
    status: str | None = None


class LiveBody(msgspec.Struct, frozen=True):
    """`/health/live`."""

    alive: bool
    timestamp: str
    message: str


class ComponentBody(msgspec.Struct, frozen=True):
    """One component in `/health/detailed`."""

    name: str
    status: Status
    message: str
    last_checked: str
    details: dict[str, Any]


class DetailedMetrics(msgspec.Struct, frozen=True):
    """The `metrics` block of `/health/detailed`."""

    uptime_seconds: float
    component_count: int
    components_healthy: int
    components_degraded: int
    components_unhealthy: int


class DetailedBody(msgspec.Struct, frozen=True):
    """`/health/detailed`."""

    status: Status
    timestamp: str
    version: str
    uptime_seconds: float
    components: list[ComponentBody]
    metrics: DetailedMetrics


class HealthMonitor:
    """Holds the component checks and answers health questions."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._checks: dict[str, Check] = {}
        self._clock = clock
        self.started_at = clock()
        self.shutting_down = False

    def register(self, name: str, check: Check) -> None:
        """Add (or replace) the check of component `name`."""
        self._checks[name] = check

    @property
    def uptime_s(self) -> float:
        """Seconds since the service started."""
        return self._clock() - self.started_at

    def report(self) -> HealthReport:
        """Run every check now."""
        stamp = utc_timestamp(self._clock())
        components = [
            msgspec.structs.replace(check(), last_checked=stamp) for check in self._checks.values()
        ]
        return HealthReport(
            status=overall_status(components), components=components, uptime_s=self.uptime_s
        )

    def readiness(self) -> tuple[bool, str, str]:
        """(ready, phase, why): phase is `ready`, `starting` or `partial`."""
        for c in self.report().components:
            if c.lifecycle == "STARTING":
                return False, "starting", f"{c.name} is starting"
            if c.name == "mediamtx" and c.status == "unhealthy":
                return False, "partial", "Waiting for MediaMTX"
        return True, "ready", "System is ready"

    # -- change events ----------------------------------------------------------------

    async def watch(
        self,
        publish: Callable[[str, msgspec.Struct], None],
        interval_s: float = WATCH_INTERVAL_S,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Publish `system.health` whenever the overall or a component status changes, and
        `system.startup` once, the first time the service is ready."""
        last: SystemHealth | None = None
        started = False
        task_status.started()
        while True:
            report = self.report()
            current = SystemHealth(report.status, {c.name: c.status for c in report.components})
            if current != last:
                if last is not None:
                    publish("system.health", current)
                last = current
            if not started and self.readiness()[0]:
                started = True
                publish("system.startup", Startup(__version__, utc_timestamp(self.started_at)))
            await trio.sleep(interval_s)

    # -- HTTP bodies (API.md §10.1) -----------------------------------------------------

    def health_body(self) -> tuple[int, HealthBody]:
        """`/health`."""
        report = self.report()
        code = 503 if report.status == "unhealthy" else 200
        return code, HealthBody(
            report.status, utc_timestamp(self._clock()), __version__, round(report.uptime_s, 3)
        )

    def ready_body(self) -> tuple[int, ReadyBody]:
        """`/health/ready`."""
        ready, phase, why = self.readiness()
        now = utc_timestamp(self._clock())
        if ready:
            return 200, ReadyBody(True, now, "System is ready")
        return 503, ReadyBody(False, now, f"System not ready: {why}", phase)

    def live_body(self) -> tuple[int, LiveBody]:
        """`/health/live`."""
        now = utc_timestamp(self._clock())
        if self.shutting_down:
            return 503, LiveBody(False, now, "System is shutting down")
        return 200, LiveBody(True, now, "System is alive")

    def detailed_body(self) -> tuple[int, DetailedBody]:
        """`/health/detailed`."""
        report = self.report()
        counts = {s: sum(c.status == s for c in report.components) for s in _STATUSES}
        uptime = round(report.uptime_s, 3)
        return (503 if report.status == "unhealthy" else 200), DetailedBody(
            status=report.status,
            timestamp=utc_timestamp(self._clock()),
            version=__version__,
            uptime_seconds=uptime,
            components=[
                ComponentBody(c.name, c.status, c.message, c.last_checked, c.details)
                for c in report.components
            ],
            metrics=DetailedMetrics(
                uptime_seconds=uptime,
                component_count=len(report.components),
                components_healthy=counts["healthy"],
                components_degraded=counts["degraded"],
                components_unhealthy=counts["unhealthy"],
            ),
        )
