"""Live streams of external devices (`ext_<name>`, API.md §8.6): MediaMTX pulls the source.

Owns: which external streams run on request (start_streaming) with their start time and
idle close, the one rule for an `ext_` path's `sourceOnDemand` (false while a stream or a
recording wants the source pulled, true otherwise: readers alone pull it on demand), and
grabbing one JPEG of the path's RTSP output for take_snapshot (ffmpeg as a reader).
Must not touch: the registry of external streams (`ExternalStreams`), recording state (it
asks `recording(device)`), local cameras.
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Callable
from typing import Final, Literal

import structlog
import trio

from camsvc.capture import JpegFrame
from camsvc.config import MediaMTXConfig
from camsvc.errors import DependencyFailed, InternalError, NotFound
from camsvc.streaming.external import ExternalStreams
from camsvc.streaming.mediamtx import (
    MediaMTXClient,
    MediaMTXError,
    MediaMTXNotFound,
    PathCache,
    PathConfPatch,
    to_camsvc_error,
)
from camsvc.streaming.streams import (
    FfmpegProcess,
    MediaMTXPathState,
    StreamMetrics,
    StreamStarted,
    StreamStatus,
    StreamStopped,
    StreamUrl,
)
from camsvc.timefmt import utc_timestamp

__all__ = ["ExternalLive"]

log = structlog.get_logger("camsvc.streaming.external_live")

# start_streaming waits this long for the path to become ready (API.md §8.6).
READY_TIMEOUT_S: Final = 10.0
POLL_S: Final = 0.1


class ExternalLive:
    """start/stop_streaming and the stream views of `ext_` devices."""

    def __init__(
        self,
        external: ExternalStreams,
        client: MediaMTXClient,
        cache: PathCache,
        cfg: MediaMTXConfig,
        *,
        recording: Callable[[str], bool] = lambda device: False,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        self.external = external
        self.ffmpeg = ffmpeg
        self.client = client
        self.cache = cache
        self.cfg = cfg
        self._recording = recording
        self._started: dict[str, float] = {}  # device -> wall-clock start of start_streaming
        self._idle_since: dict[str, float] = {}

    def has(self, device: str) -> bool:
        """Whether `device` is an added external stream."""
        return self.external.has(device)

    def streaming(self, device: str) -> bool:
        """Whether start_streaming keeps `device`'s source pulled."""
        return device in self._started and self.external.has(device)

    def _known(self, device: str) -> None:
        if not self.external.has(device):
            raise NotFound("stream", f"no external stream {device}")

    async def _pull(self, device: str, on: bool) -> None:
        """Switch the path's source to always pulled (`on`) or back to on demand."""
        await self.client.config_path_patch(device, PathConfPatch(source_on_demand=not on))

    async def _wait_ready(self, device: str) -> None:
        with trio.move_on_after(READY_TIMEOUT_S):
            while True:
                try:
                    path = await self.client.path_get(device)
                except MediaMTXNotFound:
                    path = None  # being recreated after the patch
                if path is not None and path.ready:
                    self.cache.refresh_soon()
                    return
                await trio.sleep(POLL_S)
        raise DependencyFailed(
            "mediamtx_error", f"{device}: the source did not play within {READY_TIMEOUT_S:g} s"
        )

    async def start_streaming(self, device: str, host: str = "") -> StreamStarted:
        """Have MediaMTX pull the source now and wait until the path is ready."""
        self._known(device)
        first = device not in self._started
        self._started.setdefault(device, time.time())
        try:
            await self._pull(device, True)
            await self._wait_ready(device)
        except BaseException as exc:
            if first:
                self._started.pop(device, None)
                await self._release(device)
            if isinstance(exc, MediaMTXNotFound):
                raise NotFound("stream", f"no MediaMTX path for {device}") from exc
            if isinstance(exc, MediaMTXError):
                raise to_camsvc_error(exc) from exc
            raise
        return StreamStarted.of(device, self.cfg, host, self._started[device])

    async def _release(self, device: str) -> None:
        """Back to on demand unless a recording needs the source (best effort, shielded)."""
        if self._recording(device) or device in self._started:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            try:
                await self._pull(device, False)
            except MediaMTXError as exc:
                log.warning("source_on_demand_failed", device=device, error=str(exc))

    async def stop_streaming(self, device: str) -> StreamStopped:
        """Stop pulling the source for start_streaming (a recording keeps it pulled)."""
        self._known(device)
        try:
            await self.client.info()
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        started = self._started.pop(device, None)
        self._idle_since.pop(device, None)
        continues = self._recording(device)
        await self._release(device)
        self.cache.refresh_soon()
        return StreamStopped.of(device, started, continues)

    def get_stream_url(self, device: str, host: str = "") -> StreamUrl:
        """URLs and readiness from the cached view; never calls MediaMTX."""
        self._known(device)
        return StreamUrl.of(
            device, self.cfg, host, self.cache.get(device), error=not self.cache.reachable
        )

    async def get_stream_status(self, device: str) -> StreamStatus:
        """The path as MediaMTX reports it now (camsvc runs no publisher for `ext_`)."""
        self._known(device)
        try:
            path = await self.client.path_get(device)
        except MediaMTXNotFound as exc:
            raise NotFound("stream", f"no MediaMTX path for {device}") from exc
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        started = self._started.get(device)
        wanted = started is not None or self._recording(device)
        status: Literal["ACTIVE", "STARTING", "INACTIVE"] = (
            "ACTIVE" if path.ready else "STARTING" if wanted else "INACTIVE"
        )
        ready_for = time.time() - started if started is not None else 0.0
        return StreamStatus(
            device=device,
            stream_name=device,
            status=status,
            ready=path.ready,
            ffmpeg_process=FfmpegProcess(running=False, pid=None, uptime=0.0),
            mediamtx_path=MediaMTXPathState(True, path.ready, len(path.readers)),
            metrics=StreamMetrics(
                bytes_sent=path.bytes_received,
                frames_sent=0,
                bitrate=int(path.bytes_received * 8 / ready_for) if ready_for > 0 else 0,
                fps=0.0,
            ),
            start_time=utc_timestamp(started) if started is not None else None,
        )

    async def grab_jpeg(
        self, device: str, quality: int, max_size: tuple[int, int] | None, timeout_s: float
    ) -> JpegFrame:
        """One frame of the path as JPEG, read over RTSP as any reader (which makes MediaMTX
        pull an on-demand source); -32050 while MediaMTX is down, -32603 capture_failed."""
        self._known(device)
        try:
            await self.client.info()
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        url = f"rtsp://127.0.0.1:{self.cfg.rtsp_port}/{device}"
        argv = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
        argv += ["-rtsp_transport", "tcp", "-i", url, "-frames:v", "1"]
        if max_size is not None:
            w, h = max_size  # downscale only, aspect kept
            argv += [
                "-vf",
                f"scale='min(iw,{w})':'min(ih,{h})':force_original_aspect_ratio=decrease"
                ":force_divisible_by=2",
            ]
        # ffmpeg's MJPEG scale: 2 (best) .. 31; quality 100 -> 2, 1 -> 31.
        qscale = 2 + round((100 - quality) * 29 / 99)
        argv += ["-q:v", str(qscale), "-f", "image2pipe", "-c:v", "mjpeg", "-"]
        try:
            with trio.fail_after(timeout_s):
                done = await trio.run_process(
                    argv,
                    stdin=subprocess.DEVNULL,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
        except trio.TooSlowError as exc:
            raise InternalError("capture_failed", f"no frame within {timeout_s:g} s") from exc
        if done.returncode != 0 or not done.stdout:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise InternalError("capture_failed", f"{device}: {' '.join(tail) or 'no frame'}")
        from PIL import Image

        with Image.open(io.BytesIO(done.stdout)) as img:
            width, height = img.size
        return JpegFrame(done.stdout, width, height, 0, time.monotonic())

    # -- background ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stop explicitly started streams idle for `idle_close_after`, until cancelled."""
        task_status.started()
        while True:
            changed = self.cache.changed
            with trio.move_on_after(max(1.0, float(self.cfg.health_check_interval))):
                await changed.wait()
            if self.cache.reachable:
                await self._close_idle()

    async def _close_idle(self) -> None:
        now = time.monotonic()
        limit = float(self.cfg.idle_close_after)
        for device in list(self._started):
            if not self.external.has(device):  # removed: its path is gone
                self._started.pop(device, None)
                self._idle_since.pop(device, None)
                continue
            path = self.cache.get(device)
            if path is None or path.readers or self._recording(device):
                self._idle_since.pop(device, None)
                continue
            since = self._idle_since.setdefault(device, now)
            if 0 < limit <= now - since:
                log.info("stream_idle_closed", device=device, idle_s=round(now - since, 1))
                self._started.pop(device, None)
                self._idle_since.pop(device, None)
                await self._release(device)
