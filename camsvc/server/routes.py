"""HTTP routes of the listeners: health (API.md §10.1) on both, more on the main one later."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from camsvc.observability.health import HealthMonitor
from camsvc.server.http import HttpRequest, HttpResponse, Router, json_response

__all__ = ["add_health_routes"]

_HEALTH_HEADERS = [("Cache-Control", "no-store"), ("Access-Control-Allow-Origin", "*")]


def _route(body: Callable[[], tuple[int, Any]]) -> Callable[[HttpRequest], Any]:
    async def route(req: HttpRequest) -> HttpResponse:
        status, payload = body()
        return json_response(status, payload, _HEALTH_HEADERS)

    return route


def add_health_routes(router: Router, health: HealthMonitor) -> None:
    """`/health`, `/health/live`, `/health/ready` and `/health/detailed`."""
    router.add("/health", _route(health.health_body))
    router.add("/health/live", _route(health.live_body))
    router.add("/health/ready", _route(health.ready_body))
    router.add("/health/detailed", _route(health.detailed_body))
