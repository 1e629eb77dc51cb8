"""Component health and the overall rule of API.md §10.2.

Services register a check per component; the monitor evaluates them on demand (the checks
are cheap: counters and a statvfs), so health routes always report the present state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from camsvc import __version__
from camsvc.timefmt import utc_timestamp

__all__ = [
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

    # -- HTTP bodies (API.md §10.1) -----------------------------------------------------

    def health_body(self) -> tuple[int, dict[str, Any]]:
        """`/health`."""
        report = self.report()
        code = 503 if report.status == "unhealthy" else 200
        return code, {
            "status": report.status,
            "timestamp": utc_timestamp(self._clock()),
            "version": __version__,
            "uptime_seconds": round(report.uptime_s, 3),
        }

    def ready_body(self) -> tuple[int, dict[str, Any]]:
        """`/health/ready`."""
        ready, phase, why = self.readiness()
        now = utc_timestamp(self._clock())
        if ready:
            return 200, {"ready": True, "timestamp": now, "message": "System is ready"}
        return 503, {
            "ready": False,
            "timestamp": now,
            "message": f"System not ready: {why}",
            "status": phase,
        }

    def live_body(self) -> tuple[int, dict[str, Any]]:
        """`/health/live`."""
        now = utc_timestamp(self._clock())
        if self.shutting_down:
            return 503, {"alive": False, "timestamp": now, "message": "System is shutting down"}
        return 200, {"alive": True, "timestamp": now, "message": "System is alive"}

    def detailed_body(self) -> tuple[int, dict[str, Any]]:
        """`/health/detailed`."""
        report = self.report()
        counts = {
            s: sum(c.status == s for c in report.components)
            for s in ("healthy", "degraded", "unhealthy")
        }
        return (503 if report.status == "unhealthy" else 200), {
            "status": report.status,
            "timestamp": utc_timestamp(self._clock()),
            "version": __version__,
            "uptime_seconds": round(report.uptime_s, 3),
            "components": [
                {
                    "name": c.name,
                    "status": c.status,
                    "message": c.message,
                    "last_checked": c.last_checked,
                    "details": c.details,
                }
                for c in report.components
            ],
            "metrics": {
                "uptime_seconds": round(report.uptime_s, 3),
                "component_count": len(report.components),
                "components_healthy": counts["healthy"],
                "components_degraded": counts["degraded"],
                "components_unhealthy": counts["unhealthy"],
            },
        }
