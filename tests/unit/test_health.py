"""The health monitor: the overall rule, readiness and change events (API.md §10.2, §9.3)."""

from __future__ import annotations

import pytest
import trio

from camsvc.observability.health import ComponentHealth, HealthMonitor, overall_status


def _c(name, status, lifecycle="RUNNING"):
    return ComponentHealth(name, status, "", lifecycle=lifecycle)


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ([_c("websocket_server", "healthy"), _c("storage", "healthy")], "healthy"),
        ([_c("websocket_server", "healthy"), _c("storage", "degraded")], "degraded"),
        ([_c("mediamtx", "unhealthy"), _c("storage", "healthy")], "degraded"),
        ([_c("camera_monitor", "unhealthy")], "unhealthy"),
        ([_c("storage", "unhealthy"), _c("mediamtx", "healthy")], "unhealthy"),
        ([_c("websocket_server", "unhealthy")], "unhealthy"),
    ],
)
def test_overall_rule(components, expected):
    """Unhealthy if a critical component is; degraded if any is degraded or MediaMTX is down."""
    assert overall_status(components) == expected


def test_get_status_states():
    """healthy/degraded → RUNNING, unhealthy → ERROR, starting and stopped pass through."""
    assert _c("x", "degraded").rpc_state == "RUNNING"
    assert _c("x", "unhealthy").rpc_state == "ERROR"
    assert _c("x", "degraded", "STARTING").rpc_state == "STARTING"
    assert _c("x", "healthy", "STOPPED").rpc_state == "STOPPED"


async def test_watch_publishes_startup_once_and_changes(autojump_clock):
    """system.startup once when first ready; system.health only when something changes."""
    state = {"storage": "healthy", "lifecycle": "STARTING"}
    monitor = HealthMonitor()
    monitor.register("camera_monitor", lambda: _c("camera_monitor", "degraded", state["lifecycle"]))
    monitor.register("storage", lambda: _c("storage", state["storage"]))
    published: list[tuple[str, object]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(monitor.watch, lambda topic, data: published.append((topic, data)), 1.0)
        await trio.sleep(5)
        assert published == []  # still starting: nothing changed, not ready
        state["lifecycle"] = "RUNNING"
        await trio.sleep(2)
        assert [t for t, _ in published] == ["system.startup"]
        state["storage"] = "unhealthy"
        await trio.sleep(2)
        state["storage"] = "unhealthy"
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert [t for t, _ in published] == ["system.startup", "system.health"]
    assert published[1][1].status == "unhealthy"
    assert published[1][1].components == {"camera_monitor": "degraded", "storage": "unhealthy"}
