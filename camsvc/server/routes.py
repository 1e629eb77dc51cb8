"""HTTP routes: health (API.md §10.1) on both listeners, `/metrics` (§10.4) on the main one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from camsvc.auth.roles import Role
from camsvc.auth.session import Authenticator
from camsvc.observability.health import HealthMonitor
from camsvc.observability.metrics import CONTENT_TYPE, Metrics
from camsvc.server.credentials import require_role
from camsvc.server.http import HttpRequest, HttpResponse, Router, json_response

__all__ = ["add_health_routes", "add_metrics_route"]

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


def add_metrics_route(
    router: Router, metrics: Metrics, authenticator: Authenticator, *, require_admin: bool
) -> None:
    """`/metrics` in Prometheus text format; behind admin credentials when `require_admin`."""

    async def route(req: HttpRequest) -> HttpResponse:
        return HttpResponse(200, metrics.render(), [("Content-Type", CONTENT_TYPE)])

    router.add(
        "/metrics", require_role(authenticator, Role.ADMIN, route) if require_admin else route
    )
