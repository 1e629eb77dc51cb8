"""Camera methods: `get_camera_list`, `get_camera_status`, `get_camera_capabilities`,
`get_system_status` (API.md §8.2, §8.7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from camsvc.cameras.modes import Mode
from camsvc.cameras.registry import CameraEntry, CameraRegistry
from camsvc.config import MediaMTXConfig
from camsvc.errors import NotFound
from camsvc.ids import check_device_id
from camsvc.observability.health import HealthMonitor
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import NoParams, Registry
from camsvc.streaming.urls import Streams, stream_urls

__all__ = ["CameraView", "CamerasApi", "DeviceParams"]


class DeviceParams(msgspec.Struct, frozen=True):
    """A device id."""

    device: str

    def __post_init__(self) -> None:
        check_device_id(self.device)


class CameraView(msgspec.Struct, frozen=True):
    """A Camera object (API.md §6)."""

    device: str
    status: Literal["CONNECTED", "DISCONNECTED", "ERROR"]
    name: str
    resolution: str
    fps: int
    streams: Streams
    recording: bool
    snapshot_ready: bool


class CameraList(msgspec.Struct, frozen=True):
    """The result of `get_camera_list`."""

    cameras: list[CameraView]
    total: int
    connected: int


class CameraMetrics(msgspec.Struct, frozen=True):
    """Live figures of one camera."""

    bytes_sent: int
    readers: int
    uptime: float
    frames_captured: int
    frames_dropped: int
    fps_measured: float


class CapabilitySummary(msgspec.Struct, frozen=True):
    """Formats and resolutions, as get_camera_status shows them."""

    formats: list[str]
    resolutions: list[str]


class CameraStatus(CameraView, frozen=True):
    """The result of `get_camera_status`: a Camera plus metrics and capabilities."""

    metrics: CameraMetrics
    capabilities: CapabilitySummary
    error: str | None = None


class Capabilities(msgspec.Struct, frozen=True):
    """The result of `get_camera_capabilities`."""

    device: str
    formats: list[str]
    resolutions: list[str]
    fps_options: list[int]
    frame_rates: list[int]
    validation_status: Literal["CONFIRMED", "DISCONNECTED", "NONE"]
    modes: list[Mode]


class SystemStatus(msgspec.Struct, frozen=True):
    """The result of `get_system_status`."""

    status: Literal["starting", "partial", "ready"]
    message: str
    available_cameras: list[str]
    discovery_active: bool


# Host headers remembered by the get_camera_list cache (a bound, not a tuning knob).
_LIST_CACHE_HOSTS = 64


def _resolutions(modes: list[Mode]) -> list[str]:
    sizes = sorted(
        {(m.width, m.height) for m in modes}, key=lambda s: (s[0] * s[1], s[0]), reverse=True
    )
    return [f"{w}x{h}" for w, h in sizes]


def _formats(modes: list[Mode]) -> list[str]:
    return list(dict.fromkeys(m.format for m in modes))


class CamerasApi:
    """Handlers that read the camera registry."""

    def __init__(
        self,
        cameras: CameraRegistry,
        mediamtx: MediaMTXConfig,
        health: HealthMonitor,
        *,
        recording: Callable[[str], bool] = lambda device: False,
    ) -> None:
        self._cameras = cameras
        self._recording = recording
        self._mediamtx = mediamtx
        self._health = health
        self._list_cache: dict[str, tuple[tuple[object, ...], msgspec.Raw]] = {}

    def register(self, registry: Registry) -> None:
        """Add this group's methods to `registry`."""
        # The handler returns the encoded CameraList (cached); the schema is CameraList's.
        registry.add("get_camera_list", self.get_camera_list, result=CameraList)
        registry.add(
            "get_camera_status", self.get_camera_status, params=DeviceParams, result=CameraStatus
        )
        registry.add(
            "get_camera_capabilities",
            self.get_camera_capabilities,
            params=DeviceParams,
            result=Capabilities,
        )
        registry.add("get_system_status", self.get_system_status, result=SystemStatus)

    def view(self, entry: CameraEntry, host: str = "") -> CameraView:
        """The Camera object of an entry, with URLs for a client that used `host`."""
        sup = entry.supervisor
        return CameraView(
            device=entry.device_id,
            status=entry.status,
            name=entry.name,
            resolution=entry.resolution,
            fps=entry.fps,
            streams=stream_urls(entry.device_id, self._mediamtx, host),
            recording=self._recording(entry.device_id),
            snapshot_ready=sup is not None and sup.running,
        )

    def _entry(self, device: str) -> CameraEntry:
        entry = self._cameras.get(device)
        if entry is None:
            raise NotFound("camera", f"no camera {device}")
        return entry

    def get_camera_list(self, conn: RpcConnection, params: NoParams) -> msgspec.Raw:
        """CONNECTED and ERROR cameras, and recently DISCONNECTED ones, by device number."""
        # A hot method: the encoded list is reused until a camera changes (per Host header).
        key = (conn.host, self._cameras.state_key())
        cached = self._list_cache.get(conn.host)
        if cached is None or cached[0] != key:
            views = [self.view(e, conn.host) for e in self._cameras.entries()]
            result = CameraList(views, len(views), sum(v.status == "CONNECTED" for v in views))
            cached = (key, msgspec.Raw(msgspec.json.encode(result)))
            if len(self._list_cache) >= _LIST_CACHE_HOSTS:
                self._list_cache.clear()
            self._list_cache[conn.host] = cached
        return cached[1]

    def get_camera_status(self, conn: RpcConnection, params: DeviceParams) -> CameraStatus:
        """One camera with live metrics and its capabilities."""
        entry = self._entry(params.device)
        v = self.view(entry, conn.host)
        sup = entry.supervisor
        now = self._cameras.now()
        metrics = CameraMetrics(
            bytes_sent=0,
            readers=0,
            uptime=round(now - entry.connected_at, 3) if entry.connected_at is not None else 0.0,
            frames_captured=sup.stats.frames_captured if sup else 0,
            frames_dropped=sup.stats.frames_dropped if sup else 0,
            fps_measured=sup.stats.fps(now) if sup else 0.0,
        )
        return CameraStatus(
            **msgspec.structs.asdict(v),
            metrics=metrics,
            capabilities=CapabilitySummary(_formats(entry.modes), _resolutions(entry.modes)),
            error=entry.error,
        )

    def get_camera_capabilities(self, conn: RpcConnection, params: DeviceParams) -> Capabilities:
        """Formats, sizes and rates the camera offers (last known when disconnected)."""
        entry = self._entry(params.device)
        rates = sorted({r for m in entry.modes for r in m.fps}, reverse=True)
        return Capabilities(
            device=entry.device_id,
            formats=_formats(entry.modes),
            resolutions=_resolutions(entry.modes),
            fps_options=rates,
            frame_rates=rates,
            validation_status=entry.validation,
            modes=entry.modes,
        )

    def get_system_status(self, conn: RpcConnection, params: NoParams) -> SystemStatus:
        """Whether the service is ready: camera scan done and MediaMTX reachable."""
        ready, phase, why = self._health.readiness()
        messages = {"starting": "Camera discovery in progress", "partial": "Waiting for MediaMTX"}
        return SystemStatus(
            status=phase,  # type: ignore[arg-type]
            message="System ready" if ready else messages.get(phase, why),
            available_cameras=[e.device_id for e in self._cameras.connected()],
            discovery_active=self._cameras.scanning,
        )
