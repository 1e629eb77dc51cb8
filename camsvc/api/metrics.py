"""`get_metrics` (API.md §8.7): service, camera, request and resource figures in one reply."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from camsvc.auth.roles import Role
from camsvc.cameras.registry import CameraRegistry
from camsvc.media.catalog import Catalog
from camsvc.observability.metrics import MethodTimes, Metrics
from camsvc.observability.resources import ResourceSampler, count_tasks
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.registry import NoParams, Registry
from camsvc.streaming.mediamtx import PathCache
from camsvc.streaming.recordings import RecordingService
from camsvc.timefmt import utc_timestamp

__all__ = ["MetricsApi", "MetricsResult"]


class SystemMetrics(msgspec.Struct, frozen=True):
    cpu_usage: float
    memory_usage: float
    disk_usage: float
    tasks: int


class CameraFigures(msgspec.Struct, frozen=True):
    status: str
    fps_measured: float
    frames_captured: int
    frames_dropped: int
    readers: int
    bytes_sent: int
    recording: bool
    snapshot_ready: bool


class CameraMetrics(msgspec.Struct, frozen=True):
    connected_cameras: int
    cameras: dict[str, CameraFigures]


class RecordingMetrics(msgspec.Struct, frozen=True):
    active: int
    total_started: int


class StreamMetrics(msgspec.Struct, frozen=True):
    active_streams: int
    total_streams: int
    total_viewers: int


class Performance(msgspec.Struct, frozen=True):
    request_count: int
    error_count: int
    active_connections: int
    start_time: str
    response_times: dict[str, MethodTimes]


class Resources(msgspec.Struct, frozen=True):
    cpu_usage: float
    memory_usage_bytes: int
    disk_usage_bytes: int
    network_io_bytes: int
    file_handles: int


class MetricsResult(msgspec.Struct, frozen=True):
    """The result of get_metrics."""

    timestamp: str
    system_metrics: SystemMetrics
    camera_metrics: CameraMetrics
    recording_metrics: RecordingMetrics
    stream_metrics: StreamMetrics
    performance: Performance
    resources: Resources


class MetricsApi:
    """The get_metrics handler."""

    def __init__(
        self,
        metrics: Metrics,
        sampler: ResourceSampler,
        cameras: CameraRegistry,
        catalog: Catalog,
        active_connections: Callable[[], int],
        started_at: float,
        paths: PathCache,
        recordings: RecordingService,
    ) -> None:
        self._metrics = metrics
        self._sampler = sampler
        self._cameras = cameras
        self._catalog = catalog
        self._connections = active_connections
        self._started_at = started_at
        self._paths = paths
        self._recordings = recordings

    def register(self, registry: Registry) -> None:
        """Add get_metrics to `registry`."""
        registry.add("get_metrics", self.get_metrics, result=MetricsResult, role=Role.ADMIN)

    def get_metrics(self, conn: RpcConnection, params: NoParams) -> MetricsResult:
        """Service, camera, request and resource figures."""
        s = self._sampler.latest
        now = self._cameras.now()
        cameras = {}
        # MediaMTX's paths as last seen (no call here): the stream figures of API.md §8.7.
        paths = self._paths.paths()
        for e in self._cameras.entries():
            sup = e.supervisor
            path = self._paths.get(e.device_id)
            cameras[e.device_id] = CameraFigures(
                status=e.status,
                fps_measured=sup.stats.fps(now) if sup else 0.0,
                frames_captured=sup.stats.frames_captured if sup else 0,
                frames_dropped=sup.stats.frames_dropped if sup else 0,
                readers=len(path.readers) if path is not None else 0,
                # What camsvc's publisher sent into MediaMTX (get_stream_status' bytes_sent).
                bytes_sent=path.bytes_received if path is not None else 0,
                recording=self._recordings.is_recording(e.device_id),
                snapshot_ready=sup is not None and sup.running,
            )
        media_bytes = self._catalog.total_size("recording") + self._catalog.total_size("snapshot")
        m = self._metrics
        return MetricsResult(
            timestamp=utc_timestamp(),
            system_metrics=SystemMetrics(
                s.host_cpu_percent, s.host_memory_percent, s.disk_percent, count_tasks()
            ),
            camera_metrics=CameraMetrics(len(self._cameras.connected()), cameras),
            recording_metrics=RecordingMetrics(
                self._recordings.active_count, self._recordings.total_started
            ),
            stream_metrics=StreamMetrics(
                active_streams=sum(p.ready for p in paths),
                total_streams=len(paths),
                total_viewers=sum(len(p.readers) for p in paths),
            ),
            performance=Performance(
                m.request_count,
                m.error_count,
                self._connections(),
                utc_timestamp(self._started_at),
                m.method_times(),
            ),
            resources=Resources(
                s.process_cpu_percent, s.rss_bytes, media_bytes, s.network_io_bytes, s.open_fds
            ),
        )
