"""HTTP routes: health (API.md §10.1) on both listeners; `/metrics` (§10.4) and the web
dashboard (`/`, `/ui/...`, docs/dashboard.md) on the main one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from camsvc.auth.roles import Role
from camsvc.auth.session import Authenticator
from camsvc.observability.health import HealthMonitor
from camsvc.observability.metrics import CONTENT_TYPE, Metrics
from camsvc.server.credentials import require_role
from camsvc.server.http import HttpRequest, HttpResponse, Router, json_response
from camsvc.web import CONTENT_SECURITY_POLICY, Asset, load_assets

__all__ = ["add_dashboard_routes", "add_health_routes", "add_metrics_route"]

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


def _etag_matches(header: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` value names `etag` (or is `*`); weak tags compare equal."""
    if header is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def _asset_route(asset: Asset) -> Callable[[HttpRequest], Any]:
    # Revalidated on every load (no-cache + ETag): a new camsvc version is never mixed
    # with modules of the previous one cached in the browser.
    headers = [
        ("ETag", asset.etag),
        ("Cache-Control", "no-cache"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]

    async def route(req: HttpRequest) -> HttpResponse:
        if _etag_matches(req.headers.get("if-none-match"), asset.etag):
            return HttpResponse(304, headers=headers)
        return HttpResponse(200, asset.body, [("Content-Type", asset.content_type), *headers])

    return route


def add_dashboard_routes(router: Router, ws_path: str) -> None:
    """The dashboard's page at `/` and its files under `/ui/`, each an exact route.

    The files are read once, here; any other path stays unrouted (404), so no request path
    ever reaches the file system. The page needs no credentials: it holds no data, and
    signs in over the WebSocket like any client.
    """
    for path, asset in load_assets(ws_path).items():
        router.add(path, _asset_route(asset))
