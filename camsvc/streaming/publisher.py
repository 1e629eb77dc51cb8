"""The camera publisher: one ffmpeg per live camera, fed the pump's frames, H.264 to MediaMTX.

Owns: the encoder process of each published camera (argv, spawn in its own process group,
the feeder that writes the newest frame into its stdin, the stderr tail, kill on cancel,
restart with backoff), and `Publishers`, the set of running publishers with the reasons
they run for (`stream`, `recording`, `on_demand`). Must not touch: the device (frames
come from the camera's supervisor while the publisher holds `sup.use()`), MediaMTX's API.

Key frames: an ffmpeg subprocess cannot be told to emit a key frame at run time, so the
encoder forces one every `KEYFRAME_INTERVAL_S` of wall time (`-force_key_frames`). A
recording's first segment therefore starts at most that long after `record` is switched
on, without restarting the encoder (a restart would drop every reader and the path's
readiness). PyAV (not installed here) could force one on demand; see docs/mediamtx.md.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Final, Literal

import structlog
import trio

from camsvc.cameras.supervisor import CameraSupervisor
from camsvc.capture import CaptureError, Format

__all__ = [
    "KEYFRAME_INTERVAL_S",
    "Publisher",
    "Publishers",
    "Reason",
    "encoder_argv",
]

log = structlog.get_logger("camsvc.streaming.publisher")

# Wall-time spacing of forced key frames: bounds a recording's start latency.
KEYFRAME_INTERVAL_S: Final = 0.5
# Restart backoff of a failed encoder: doubles from the first value up to the last.
BACKOFF_FIRST_S: Final = 0.5
BACKOFF_MAX_S: Final = 10.0
# A run that lasted this long resets the backoff.
HEALTHY_RUN_S: Final = 10.0
# How long to wait for the pump's first frame before the attempt counts as failed.
FIRST_FRAME_TIMEOUT_S: Final = 5.0
# No frame newer than the last one fed for this long: the pump may have restarted its stream.
FEED_STALL_S: Final = 2.0
# Grace between SIGTERM and SIGKILL of the encoder's process group.
KILL_GRACE_S: Final = 1.0
# Lines of ffmpeg's stderr kept for the log.
STDERR_LINES: Final = 20

Reason = Literal["stream", "recording", "on_demand"]
State = Literal["STARTING", "RUNNING", "BACKOFF", "STOPPED"]

_RAW_PIX_FMT: Final = {"YUYV": "yuyv422", "NV12": "nv12"}


def encoder_argv(
    fmt: Format,
    rtsp_url: str,
    *,
    ffmpeg: str = "ffmpeg",
    preset: str = "ultrafast",
    tune: str = "zerolatency",
) -> list[str]:
    """The ffmpeg command encoding frames of `fmt` read from stdin and publishing `rtsp_url`."""
    rate = f"{fmt.fps:g}" if fmt.fps else "30"
    argv = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error"]
    # Frames are stamped as they arrive: the pump may drop some, the rate is nominal.
    argv += ["-fflags", "nobuffer", "-use_wallclock_as_timestamps", "1"]
    if fmt.fourcc == "MJPG":
        argv += ["-f", "mjpeg", "-framerate", rate]
    elif fmt.fourcc in _RAW_PIX_FMT:
        argv += ["-f", "rawvideo", "-pix_fmt", _RAW_PIX_FMT[fmt.fourcc]]
        argv += ["-video_size", f"{fmt.width}x{fmt.height}", "-framerate", rate]
    else:
        raise ValueError(f"no encoder input for pixel format {fmt.fourcc}")
    argv += ["-i", "pipe:0", "-an"]
    argv += ["-c:v", "libx264", "-preset", preset, "-tune", tune, "-pix_fmt", "yuv420p"]
    argv += ["-bf", "0", "-sc_threshold", "0"]
    argv += ["-force_key_frames", f"expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S:g})"]
    argv += ["-fps_mode", "passthrough"]
    argv += ["-f", "rtsp", "-rtsp_transport", "tcp", rtsp_url]
    return argv


def _packed(data: bytes, fmt: Format) -> bytes:
    """Frame bytes without row padding (rawvideo expects tightly packed rows)."""
    if fmt.fourcc != "YUYV" or fmt.bytesperline in (0, fmt.width * 2):
        return data
    row = fmt.width * 2
    stride = fmt.bytesperline
    return b"".join(data[y * stride : y * stride + row] for y in range(fmt.height))


class EncoderFailed(Exception):
    """The encoder exited or could not be fed."""


class Publisher:
    """One camera's encoder, supervised: restarted with backoff until cancelled."""

    def __init__(
        self,
        device_id: str,
        supervisor: Callable[[], CameraSupervisor | None],
        rtsp_url: str,
        *,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        self.device_id = device_id
        self._supervisor = supervisor
        self.rtsp_url = rtsp_url
        self.ffmpeg = ffmpeg
        self.state: State = "STARTING"
        self.pid: int | None = None
        self.started_at: float | None = None  # monotonic, of the current encoder
        self.start_time = time.time()  # wall clock, of the publisher
        self.frames_sent = 0
        self.bytes_sent = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.camera_gone = trio.Event()
        self.stopped = trio.Event()
        self._retry = trio.Event()

    @property
    def running(self) -> bool:
        """True while an encoder process is being fed."""
        return self.state == "RUNNING" and self.pid is not None

    def uptime(self) -> float:
        """Seconds the current encoder has run (0 if none)."""
        return round(time.monotonic() - self.started_at, 3) if self.started_at else 0.0

    def retry_now(self) -> None:
        """End a backoff pause at once (MediaMTX is back: waiting longer helps no one)."""
        self._retry.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the encoder until cancelled or the camera is gone; failures restart it."""
        task_status.started()
        backoff = 0.0
        try:
            while True:
                sup = self._supervisor()
                if sup is None:
                    log.info("publisher_camera_gone", device=self.device_id)
                    self.camera_gone.set()
                    return
                began = time.monotonic()
                try:
                    await self._run_once(sup)
                except (EncoderFailed, CaptureError, OSError) as exc:
                    self.last_error = str(exc)
                    log.warning("publisher_failed", device=self.device_id, error=str(exc))
                if self._supervisor() is not sup:
                    continue  # camera gone or replaced: look again at once
                if time.monotonic() - began >= HEALTHY_RUN_S:
                    backoff = 0.0
                backoff = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, 2 * backoff))
                self.state = "BACKOFF"
                self.restarts += 1
                self._retry = trio.Event()
                with trio.move_on_after(backoff):
                    await self._retry.wait()
        finally:
            self.state = "STOPPED"
            self.pid = None
            self.started_at = None
            self.stopped.set()

    async def _run_once(self, sup: CameraSupervisor) -> None:
        self.state = "STARTING"
        async with sup.use():
            with trio.move_on_after(FIRST_FRAME_TIMEOUT_S):
                first = await sup.wait_frame()
            fmt = sup.format
            if fmt is None or sup.camera is None:
                raise EncoderFailed("no frame from the camera")
            argv = encoder_argv(fmt, self.rtsp_url, ffmpeg=self.ffmpeg)
            proc = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            self.pid = proc.pid
            self.started_at = time.monotonic()
            self.state = "RUNNING"
            log.info(
                "publisher_started",
                device=self.device_id,
                pid=proc.pid,
                format=fmt.fourcc,
                width=fmt.width,
                height=fmt.height,
            )
            tail: deque[str] = deque(maxlen=STDERR_LINES)
            failure: list[str] = []
            try:
                async with trio.open_nursery() as nursery:

                    async def feed() -> None:
                        try:
                            await self._feed(proc, sup, fmt, first.sequence - 1)
                        except (EncoderFailed, CaptureError) as exc:
                            failure.append(str(exc))
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(self._read_stderr, proc, tail)
                    nursery.start_soon(feed)
                    await proc.wait()
                    failure.append(f"encoder exited with {proc.returncode}: {' | '.join(tail)}")
                    nursery.cancel_scope.cancel()
                raise EncoderFailed(failure[0][:500] if failure else "encoder stopped")
            finally:
                self.pid = None
                self.started_at = None
                with trio.CancelScope(shield=True):
                    await _kill(proc)

    async def _feed(
        self, proc: trio.Process, sup: CameraSupervisor, fmt: Format, after: int
    ) -> None:
        """Write the newest frame whenever the encoder can take one; older ones are skipped."""
        assert proc.stdin is not None
        seq = after
        while True:
            with trio.move_on_after(FEED_STALL_S) as waited:
                frame = await sup.wait_frame(seq)
            if waited.cancelled_caught:
                # A restarted stream numbers its frames from 0 again: accept them.
                seq = -1
                continue
            seq = frame.sequence
            camera = sup.camera
            data = camera.frame_data() if camera is not None else None
            if data is None:
                continue
            data = _packed(data, fmt)
            try:
                await proc.stdin.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise EncoderFailed("encoder closed its input") from exc
            self.frames_sent += 1
            self.bytes_sent += len(data)

    @staticmethod
    async def _read_stderr(proc: trio.Process, tail: deque[str]) -> None:
        assert proc.stderr is not None
        buf = b""
        async for chunk in proc.stderr:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            tail.extend(line.decode("utf-8", "replace") for line in lines if line.strip())


async def _kill(proc: trio.Process) -> None:
    """End the encoder's process group: close stdin, SIGTERM, then SIGKILL after a grace."""
    if proc.stdin is not None:
        await proc.stdin.aclose()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with trio.move_on_after(KILL_GRACE_S):
            await proc.wait()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    if proc.stderr is not None:
        await proc.stderr.aclose()


class _Running:
    """A publisher, its cancel scope and its users by reason.

    `stream` and `recording` are one use each however often they are asked for (a second
    start_streaming is the same stream); `on_demand` counts MediaMTX's runOnDemand commands.
    """

    def __init__(self, publisher: Publisher, scope: trio.CancelScope) -> None:
        self.publisher = publisher
        self.scope = scope
        self.users: Counter[Reason] = Counter()


class Publishers:
    """The publishers of all cameras: started on the first reason, stopped with the last."""

    def __init__(
        self,
        supervisor_of: Callable[[str], CameraSupervisor | None],
        rtsp_url_of: Callable[[str], str],
        *,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        self._supervisor_of = supervisor_of
        self._rtsp_url_of = rtsp_url_of
        self.ffmpeg = ffmpeg
        self._running: dict[str, _Running] = {}
        self._stopping: dict[str, Publisher] = {}  # released, encoder not ended yet
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the publishers' nursery until cancelled (which ends every publisher)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep(math.inf)

    def get(self, device_id: str) -> Publisher | None:
        """The running publisher of a camera, or None."""
        run = self._running.get(device_id)
        return run.publisher if run is not None else None

    def stopping(self, device_id: str) -> Publisher | None:
        """A camera's released publisher whose encoder is still ending, or None."""
        return self._stopping.get(device_id)

    def retry_all(self) -> None:
        """Restart every publisher waiting out a backoff now."""
        for run in self._running.values():
            run.publisher.retry_now()

    def reasons(self, device_id: str) -> set[Reason]:
        """Why a camera's publisher runs (empty if it does not)."""
        run = self._running.get(device_id)
        return set(run.users) if run is not None else set()

    def acquire(self, device_id: str, reason: Reason) -> Publisher:
        """Make sure the camera's publisher runs, for `reason`; returns it."""
        if self._nursery is None:
            raise RuntimeError("publishers are not running")
        run = self._running.get(device_id)
        if run is None:
            publisher = Publisher(
                device_id,
                lambda: self._supervisor_of(device_id),
                self._rtsp_url_of(device_id),
                ffmpeg=self.ffmpeg,
            )
            run = _Running(publisher, trio.CancelScope())
            self._running[device_id] = run
            self._nursery.start_soon(self._supervise, run)
        run.users[reason] = run.users[reason] + 1 if reason == "on_demand" else 1
        return run.publisher

    def release(
        self, device_id: str, reason: Reason, *, publisher: Publisher | None = None
    ) -> bool:
        """Drop one use for `reason`; stops the publisher when none is left.

        With `publisher`, only that publisher is released (not a later one of the same
        camera, started after it ended). True if the camera's publisher keeps running.
        """
        run = self._running.get(device_id)
        if run is None:
            return False
        if publisher is not None and run.publisher is not publisher:
            return True
        if run.users[reason] > 0:
            run.users[reason] -= 1
        run.users = +run.users  # forget reasons counted down to 0
        if run.users:
            return True
        run.scope.cancel()
        del self._running[device_id]
        self._stopping[device_id] = run.publisher
        return False

    async def _supervise(self, run: _Running) -> None:
        structlog.contextvars.clear_contextvars()  # not the starting request's task
        device_id = run.publisher.device_id
        try:
            with run.scope:
                await run.publisher.run()
        finally:
            if self._stopping.get(device_id) is run.publisher:
                del self._stopping[device_id]
        # Ended by itself (camera gone): forget it unless already replaced.
        if self._running.get(device_id) is run:
            del self._running[device_id]
