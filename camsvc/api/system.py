"""System methods: `get_server_info`, `get_status` (API.md §8.7)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Literal

import msgspec

from camsvc import API_VERSION, __version__
from camsvc.auth.roles import Role
from camsvc.config import Config
from camsvc.observability.health import HealthMonitor
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import NoParams, Registry
from camsvc.timefmt import utc_timestamp

__all__ = ["ServerInfo", "StatusResult", "SystemApi"]

# A capability is announced when the method that provides it is registered.
_CAPABILITY_METHODS = {
    "snapshots": "take_snapshot",
    "recordings": "start_recording",
    "streaming": "start_streaming",
    "events": "subscribe_events",
    "api_keys": "authenticate",
    "external_streams": "add_external_stream",
}

ComponentState = Literal["RUNNING", "STOPPED", "ERROR", "STARTING"]


class ServerInfo(msgspec.Struct, frozen=True):
    """The result of `get_server_info`."""

    name: str
    version: str
    api_version: str
    build_date: str
    python_version: str
    architecture: str
    capabilities: list[str]
    supported_formats: list[str]
    max_cameras: int


class StatusComponents(msgspec.Struct, frozen=True):
    """Component states of `get_status`."""

    websocket_server: ComponentState
    camera_monitor: ComponentState
    mediamtx: ComponentState
    storage: ComponentState


class StatusResult(msgspec.Struct, frozen=True):
    """The result of `get_status`."""

    status: Literal["HEALTHY", "DEGRADED", "UNHEALTHY"]
    uptime: float
    version: str
    components: StatusComponents


def _build_date() -> str:
    """When this installation of camsvc was built (the package files' time)."""
    return utc_timestamp(Path(__file__).resolve().parent.stat().st_mtime)


class SystemApi:
    """Handlers for server information and status."""

    def __init__(self, config: Config, health: HealthMonitor, registry: Registry) -> None:
        self._config = config
        self._health = health
        self._registry = registry
        self._build_date = _build_date()

    def register(self, registry: Registry) -> None:
        """Add this group's methods to `registry`."""
        registry.add("get_server_info", self.get_server_info, result=ServerInfo, role=Role.VIEWER)
        registry.add("get_status", self.get_status, result=StatusResult, role=Role.ADMIN)

    def get_server_info(self, conn: RpcConnection, params: NoParams) -> ServerInfo:
        """Name, versions, platform and what this server can do."""
        lo, hi = self._config.camera.device_range
        caps = [cap for cap, method in _CAPABILITY_METHODS.items() if self._registry.get(method)]
        if self._config.external_discovery.enabled is False and "external_streams" in caps:
            caps.remove("external_streams")
        caps.insert(caps.index("api_keys") if "api_keys" in caps else len(caps), "batch")
        return ServerInfo(
            name="camsvc",
            version=__version__,
            api_version=API_VERSION,
            build_date=self._build_date,
            python_version=platform.python_version(),
            architecture=platform.machine(),
            capabilities=caps,
            supported_formats=["fmp4", "mp4", "jpeg", "png"],
            max_cameras=hi - lo + 1,
        )

    def get_status(self, conn: RpcConnection, params: NoParams) -> StatusResult:
        """Overall health and each component's state (API.md §10.2)."""
        report = self._health.report()
        states = {c.name: c.rpc_state for c in report.components}
        return StatusResult(
            status=report.status.upper(),  # type: ignore[arg-type]
            uptime=round(report.uptime_s, 3),
            version=__version__,
            components=StatusComponents(
                # A component this build does not run yet is reported as STOPPED.
                **{name: states.get(name, "STOPPED") for name in StatusComponents.__struct_fields__}
            ),
        )
