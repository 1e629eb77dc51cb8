"""Live streams of local cameras (API.md §8.6): start, stop, and what MediaMTX says of them.

Owns: which cameras stream on request (with their start time and idle close), waiting for
a path to become ready, the `mediamtx.stream_started` / `stream_stopped` events (from the
cached path view), and the result Structs of the stream methods. Must not touch: devices,
the encoder process (that is `Publishers`), recordings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final, Literal

import msgspec
import structlog
import trio

from camsvc.cameras.registry import CameraEntry, CameraRegistry
from camsvc.config import MediaMTXConfig
from camsvc.errors import DependencyFailed, NotFound
from camsvc.events import EventBus
from camsvc.streaming.mediamtx import (
    MediaMTXClient,
    MediaMTXError,
    MediaMTXNotFound,
    Path,
    PathCache,
    to_camsvc_error,
)
from camsvc.streaming.publisher import Publishers
from camsvc.streaming.urls import Streams, stream_urls
from camsvc.timefmt import utc_timestamp

__all__ = [
    "FfmpegProcess",
    "MediaMTXPathState",
    "StreamEntry",
    "StreamMetrics",
    "StreamService",
    "StreamStarted",
    "StreamStatus",
    "StreamStopped",
    "StreamUrl",
]

log = structlog.get_logger("camsvc.streaming.streams")

# start_streaming waits this long for the path to become ready (API.md §8.6).
READY_TIMEOUT_S: Final = 10.0
# Poll period while waiting for readiness.
POLL_S: Final = 0.1


class StreamStarted(msgspec.Struct, frozen=True):
    """The result of start_streaming."""

    device: str
    stream_name: str
    stream_url: str
    urls: Streams
    status: Literal["STARTED"]
    start_time: str
    auto_close_after: str

    @classmethod
    def of(cls, device: str, cfg: MediaMTXConfig, host: str, started: float) -> StreamStarted:
        """The result for `device`'s path, started at `started` (epoch seconds)."""
        urls = stream_urls(device, cfg, host)
        return cls(
            device=device,
            stream_name=device,
            stream_url=urls.rtsp,
            urls=urls,
            status="STARTED",
            start_time=utc_timestamp(started),
            auto_close_after=f"{float(cfg.idle_close_after):g}s",
        )


class StreamStopped(msgspec.Struct, frozen=True):
    """The result of stop_streaming."""

    device: str
    stream_name: str
    status: Literal["STOPPED"]
    start_time: str | None
    end_time: str
    duration: float
    stream_continues: bool

    @classmethod
    def of(cls, device: str, started: float | None, continues: bool) -> StreamStopped:
        """The result for a stream started at `started` (epoch seconds), stopped now."""
        now = time.time()
        return cls(
            device=device,
            stream_name=device,
            status="STOPPED",
            start_time=utc_timestamp(started) if started is not None else None,
            end_time=utc_timestamp(now),
            duration=round(now - started, 3) if started is not None else 0.0,
            stream_continues=continues,
        )


class StreamUrl(msgspec.Struct, frozen=True):
    """The result of get_stream_url."""

    device: str
    stream_name: str
    stream_url: str
    urls: Streams
    available: bool
    active_consumers: int
    stream_status: Literal["READY", "NOT_READY", "ERROR"]

    @classmethod
    def of(
        cls, device: str, cfg: MediaMTXConfig, host: str, path: Path | None, *, error: bool
    ) -> StreamUrl:
        """The URLs and readiness of `device`'s path as the cached view shows it."""
        urls = stream_urls(device, cfg, host)
        status: Literal["READY", "NOT_READY", "ERROR"]
        if error:
            status = "ERROR"
        elif path is not None and path.ready:
            status = "READY"
        else:
            status = "NOT_READY"  # for a pulled source, a reader makes MediaMTX pull it
        return cls(
            device=device,
            stream_name=device,
            stream_url=urls.rtsp,
            urls=urls,
            available=not error,
            active_consumers=len(path.readers) if path is not None else 0,
            stream_status=status,
        )


class FfmpegProcess(msgspec.Struct, frozen=True):
    """camsvc's publisher process as get_stream_status shows it."""

    running: bool
    pid: int | None
    uptime: float


class MediaMTXPathState(msgspec.Struct, frozen=True):
    """The camera's MediaMTX path as get_stream_status shows it."""

    exists: bool
    ready: bool
    readers: int


class StreamMetrics(msgspec.Struct, frozen=True):
    """Publisher figures of get_stream_status."""

    bytes_sent: int
    frames_sent: int
    bitrate: int
    fps: float


class StreamStatus(msgspec.Struct, frozen=True):
    """The result of get_stream_status."""

    device: str
    stream_name: str
    status: Literal["ACTIVE", "STARTING", "STOPPING", "INACTIVE", "ERROR"]
    ready: bool
    ffmpeg_process: FfmpegProcess
    mediamtx_path: MediaMTXPathState
    metrics: StreamMetrics
    start_time: str | None


class StreamEntry(msgspec.Struct, frozen=True):
    """One element of get_streams."""

    name: str
    source: str | None
    ready: bool
    readers: int
    bytes_sent: int


class PathEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """Data of `mediamtx.stream_started` (with source) and `mediamtx.stream_stopped`."""

    device: str
    stream_name: str
    source: str | msgspec.UnsetType | None = msgspec.UNSET


class StreamService:
    """start/stop_streaming and the stream views, over Publishers and the path cache."""

    def __init__(
        self,
        cameras: CameraRegistry,
        publishers: Publishers,
        client: MediaMTXClient,
        cache: PathCache,
        cfg: MediaMTXConfig,
        bus: EventBus,
        *,
        recording: Callable[[str], bool] = lambda device: False,
    ) -> None:
        self.cameras = cameras
        self.publishers = publishers
        self.client = client
        self.cache = cache
        self.cfg = cfg
        self.bus = bus
        self._recording = recording
        self._started: dict[str, float] = {}  # device -> wall-clock start of start_streaming
        self._idle_since: dict[str, float] = {}

    # -- helpers ---------------------------------------------------------------------

    def connected_entry(self, device: str) -> CameraEntry:
        """The CONNECTED camera `device`, else -32010 camera_not_found."""
        entry = self.cameras.get(device)
        if entry is None or entry.status != "CONNECTED":
            raise NotFound("camera", f"no connected camera {device}")
        return entry

    async def wait_ready(self, device: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Return once MediaMTX reports the path ready; -32050 after `timeout_s`."""
        with trio.move_on_after(timeout_s):
            while True:
                try:
                    path = await self.client.path_get(device)
                except MediaMTXNotFound:
                    path = None  # the path manager has not added it yet
                except MediaMTXError as exc:
                    raise to_camsvc_error(exc) from exc
                if path is not None and path.ready:
                    self.cache.refresh_soon()
                    return
                await trio.sleep(POLL_S)
        raise DependencyFailed("mediamtx_error", f"path {device} not ready after {timeout_s:g} s")

    # -- methods ---------------------------------------------------------------------

    async def start_streaming(self, device: str, host: str = "") -> StreamStarted:
        """Start the camera's publisher and wait until its path is ready."""
        self.connected_entry(device)
        try:
            await self.client.info()
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        first = device not in self._started
        self._started.setdefault(device, time.time())
        self.publishers.acquire(device, "stream")
        try:
            await self.wait_ready(device)
        except BaseException:
            if first:
                self._started.pop(device, None)
                self.publishers.release(device, "stream")
            raise
        return StreamStarted.of(device, self.cfg, host, self._started[device])

    async def stop_streaming(self, device: str) -> StreamStopped:
        """Stop the camera's publisher unless a recording uses it."""
        self.connected_entry(device)
        try:
            await self.client.info()
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        return self.stop_now(device)

    def stop_now(self, device: str) -> StreamStopped:
        """Drop the `stream` reason of a camera's publisher (no MediaMTX call)."""
        started = self._started.pop(device, None)
        self._idle_since.pop(device, None)
        continues = self.publishers.release(device, "stream")
        if not continues:
            self.cache.refresh_soon()
        return StreamStopped.of(device, started, continues)

    def get_stream_url(self, device: str, host: str = "") -> StreamUrl:
        """URLs and readiness from the cached view; never calls MediaMTX."""
        entry = self.cameras.get(device)
        if entry is None:
            raise NotFound("camera", f"no camera {device}")
        error = not self.cache.reachable or entry.status != "CONNECTED"
        return StreamUrl.of(device, self.cfg, host, self.cache.get(device), error=error)

    async def get_stream_status(self, device: str) -> StreamStatus:
        """The publisher and the path as MediaMTX reports them now."""
        entry = self.cameras.get(device)
        if entry is None or entry.status != "CONNECTED":
            raise NotFound("stream", f"no MediaMTX path for {device}")
        try:
            path = await self.client.path_get(device)
        except MediaMTXNotFound as exc:
            raise NotFound("stream", f"no MediaMTX path for {device}") from exc
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        pub = self.publishers.get(device)
        status: Literal["ACTIVE", "STARTING", "STOPPING", "INACTIVE", "ERROR"]
        if pub is None and self.publishers.stopping(device) is not None:
            status = "STOPPING"  # released; its encoder is still ending
        elif path.ready:
            status = "ACTIVE"
        elif pub is None:
            status = "INACTIVE"
        elif pub.state == "BACKOFF":
            status = "ERROR"
        else:
            status = "STARTING"
        uptime = pub.uptime() if pub is not None else 0.0
        frames = pub.frames_sent if pub is not None else 0
        started = self._started.get(device, pub.start_time if pub is not None else None)
        return StreamStatus(
            device=device,
            stream_name=device,
            status=status,
            ready=path.ready,
            ffmpeg_process=FfmpegProcess(
                running=pub is not None and pub.running,
                pid=pub.pid if pub is not None else None,
                uptime=uptime,
            ),
            mediamtx_path=MediaMTXPathState(True, path.ready, len(path.readers)),
            metrics=StreamMetrics(
                bytes_sent=path.bytes_received,
                frames_sent=frames,
                bitrate=int(path.bytes_received * 8 / uptime) if uptime > 0 else 0,
                fps=round(frames / uptime, 2) if uptime > 0 else 0.0,
            ),
            start_time=utc_timestamp(started) if started is not None else None,
        )

    def get_streams(self) -> list[StreamEntry]:
        """Every MediaMTX path from the cached view, sorted by name; -32050 if unreachable."""
        if not self.cache.reachable:
            raise DependencyFailed("mediamtx_unavailable", self.cache.last_error or "unreachable")
        return [
            StreamEntry(
                name=p.name,
                source=p.source.type if p.source is not None else None,
                ready=p.ready,
                readers=len(p.readers),
                bytes_sent=p.bytes_sent,
            )
            for p in self.cache.paths()
        ]

    # -- background ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Announce path readiness changes and close idle streams, until cancelled."""
        task_status.started()
        ready: dict[str, bool] = {}
        while True:
            changed = self.cache.changed
            with trio.move_on_after(max(1.0, float(self.cfg.health_check_interval))):
                await changed.wait()
            if self.cache.down:
                # An outage: no path is ready any more, whatever MediaMTX said last.
                now_ready: dict[str, bool] = {}
            elif not self.cache.reachable:
                continue  # one failed check: the next one tells
            else:
                now_ready = {p.name: p.ready for p in self.cache.paths()}
            for name in sorted(set(ready) | set(now_ready)):
                was, now = ready.get(name, False), now_ready.get(name, False)
                if now and not was:
                    path = self.cache.get(name)
                    source = path.source.type if path and path.source else None
                    self.bus.publish(
                        "mediamtx.stream_started", PathEvent(name, name, source), device=name
                    )
                elif was and not now:
                    self.bus.publish("mediamtx.stream_stopped", PathEvent(name, name), device=name)
            ready = now_ready
            if self.cache.reachable:
                self._close_idle()  # never on the stale readers of an outage

    def _close_idle(self) -> None:
        """Stop explicitly started streams without readers for `idle_close_after`."""
        now = time.monotonic()
        limit = float(self.cfg.idle_close_after)
        for device in list(self._started):
            path = self.cache.get(device)
            if path is None or path.readers or self._recording(device):
                self._idle_since.pop(device, None)
                continue
            since = self._idle_since.setdefault(device, now)
            if limit > 0 and now - since >= limit and not math.isinf(limit):
                log.info("stream_idle_closed", device=device, idle_s=round(now - since, 1))
                self.stop_now(device)
