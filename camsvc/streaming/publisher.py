"""The camera publisher: one PyAV H.264 encoder per live camera, relayed to MediaMTX by ffmpeg.

Owns: the encoder of each published camera (PyAV's libx264, in process, each frame encoded
in a worker thread), the relay process that publishes its H.264 over RTSP (argv, spawn in
its own process group, the stderr tail, kill on cancel), restart with backoff, and
`Publishers`, the set of running publishers with the reasons they run for (`stream`,
`recording`, `on_demand`). Must not touch: the device (frames come from the camera's
supervisor while the publisher holds `sup.use()`), MediaMTX's API.

Key frames: `force_keyframe` makes the next encoded frame an IDR, so a recording's first
segment starts one frame after `record` is switched on rather than at the next periodic
key frame (every `GOP_S`, for readers joining). Why the split between PyAV and ffmpeg:
PyAV releases the GIL while it encodes, but not while its RTSP muxer talks to the server
(`avformat_write_header` and the close hold it across the whole handshake), which freezes
the event loop for as long as MediaMTX takes to answer, and for ever against a stand-in in
this very process. Piping the encoded stream into `ffmpeg -c copy` keeps every socket out of
process at the cost of a copy of the compressed stream. See docs/mediamtx.md.
"""

from __future__ import annotations

import functools
import math
import signal
import subprocess
import time
from collections import Counter, deque
from collections.abc import Callable
from fractions import Fraction
from typing import Final, Literal

import av
import structlog
import trio
from av.video.frame import PictureType

from camsvc.cameras.supervisor import CameraSupervisor
from camsvc.capture import CaptureError, Format
from camsvc.streaming.processes import end_process_group

__all__ = [
    "GOP_S",
    "BadFrame",
    "H264Encoder",
    "Publisher",
    "Publishers",
    "Reason",
    "relay_argv",
]

log = structlog.get_logger("camsvc.streaming.publisher")

# Key frame spacing when none is asked for: bounds how long a joining reader waits.
GOP_S: Final = 2.0
# Restart backoff of a failed encoder: doubles from the first value up to the last.
BACKOFF_FIRST_S: Final = 0.5
BACKOFF_MAX_S: Final = 10.0
# A run that lasted this long resets the backoff.
HEALTHY_RUN_S: Final = 10.0
# How long to wait for the pump's first frame before the attempt counts as failed.
FIRST_FRAME_TIMEOUT_S: Final = 5.0
# No frame newer than the last one fed for this long: the pump may have restarted its stream.
FEED_STALL_S: Final = 2.0
# Grace between SIGTERM and SIGKILL of the relay's process group.
KILL_GRACE_S: Final = 1.0
# Lines of ffmpeg's stderr kept for the log.
STDERR_LINES: Final = 20

Reason = Literal["stream", "recording", "on_demand"]
State = Literal["STARTING", "RUNNING", "BACKOFF", "STOPPED"]

_RAW_PIX_FMT: Final = {"YUYV": "yuyv422", "NV12": "nv12"}
# An access unit delimiter after each frame ends it for the relay's H.264 parser, which
# otherwise holds a frame back until the next one starts.
_AUD: Final = b"\x00\x00\x00\x01\x09\xf0"


def relay_argv(rtsp_url: str, *, ffmpeg: str = "ffmpeg") -> list[str]:
    """The ffmpeg command publishing the H.264 (Annex B) read from stdin to `rtsp_url`."""
    argv = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error"]
    # Frames are stamped as they arrive: the pump may drop some, the rate is nominal.
    argv += ["-fflags", "nobuffer", "-probesize", "32", "-analyzeduration", "0"]
    argv += ["-use_wallclock_as_timestamps", "1", "-f", "h264", "-i", "pipe:0", "-an"]
    argv += ["-c:v", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", rtsp_url]
    return argv


def _raw_picture(data: bytes, fmt: Format) -> av.VideoFrame:
    """A YUYV or NV12 frame as PyAV's, its rows re-strided from the device's to PyAV's."""
    picture = av.VideoFrame(fmt.width, fmt.height, _RAW_PIX_FMT[fmt.fourcc])
    # (bytes per row, rows) of each plane: YUYV one packed plane, NV12 luma then UV pairs.
    if fmt.fourcc == "YUYV":
        layout = [(fmt.width * 2, fmt.height)]
    else:
        layout = [(fmt.width, fmt.height), (fmt.width, fmt.height // 2)]
    stride = fmt.bytesperline or layout[0][0]
    view = memoryview(data)
    offset = 0
    for plane, (row, rows) in zip(picture.planes, layout, strict=True):
        if len(view) < offset + stride * (rows - 1) + row:
            raise BadFrame(f"{fmt.fourcc} frame of {len(data)} bytes is short")
        if plane.line_size == stride and len(view) >= offset + stride * rows:
            plane.update(view[offset : offset + stride * rows])
        else:
            pad = bytes(plane.line_size - row)
            start = range(offset, offset + stride * rows, stride)
            plane.update(b"".join(view[at : at + row].tobytes() + pad for at in start))
        offset += stride * rows
    return picture


class BadFrame(Exception):
    """A camera frame that does not decode (a torn MJPEG frame): skipped, not fatal."""


class EncoderFailed(Exception):
    """The encoder or its relay failed."""


class H264Encoder:
    """A camera's frames to H.264 access units (Annex B, SPS/PPS before each IDR).

    `encode` is blocking C work that releases the GIL: call it from a worker thread, one
    call at a time.
    """

    def __init__(self, fmt: Format, *, preset: str = "ultrafast", tune: str = "zerolatency"):
        if fmt.fourcc != "MJPG" and fmt.fourcc not in _RAW_PIX_FMT:
            raise ValueError(f"no encoder input for pixel format {fmt.fourcc}")
        self.fmt = fmt
        self._mjpeg = av.CodecContext.create("mjpeg", "r") if fmt.fourcc == "MJPG" else None
        rate = Fraction(fmt.fps or 30.0).limit_denominator(1001)
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = fmt.width, fmt.height, "yuv420p"
        codec.time_base = Fraction(1, 1000)
        codec.framerate = rate
        codec.gop_size = max(1, round(float(rate) * GOP_S))
        codec.max_b_frames = 0
        # forced-idr: a forced key frame is an IDR (a recorder can start a segment on it).
        codec.options = {"preset": preset, "tune": tune, "forced-idr": "1", "sc_threshold": "0"}
        codec.open()
        self._codec = codec
        self._last_pts = -1

    def encode(self, data: bytes, pts_ms: int, *, keyframe: bool) -> tuple[bytes, bool]:
        """One frame's H.264 bytes (may be empty) and whether they hold a key frame."""
        picture = self._picture(data)
        if picture.format.name != "yuv420p":
            picture = picture.reformat(format="yuv420p")
        self._last_pts = max(pts_ms, self._last_pts + 1)  # x264 wants strictly rising pts
        picture.pts = self._last_pts
        picture.pict_type = PictureType.I if keyframe else PictureType.NONE
        out = b""
        key = False
        for packet in self._codec.encode(picture):
            out += bytes(packet) + _AUD
            key = key or packet.is_keyframe
        return out, key

    def _picture(self, data: bytes) -> av.VideoFrame:
        fmt = self.fmt
        if self._mjpeg is None:
            return _raw_picture(data, fmt)
        try:
            frames = self._mjpeg.decode(av.Packet(data))
        except av.FFmpegError as exc:
            raise BadFrame(f"MJPEG frame does not decode: {exc}") from exc
        if not frames:
            raise BadFrame("MJPEG frame does not decode")
        picture = frames[-1]
        if (picture.width, picture.height) != (fmt.width, fmt.height):
            raise BadFrame(f"MJPEG frame is {picture.width}x{picture.height}")
        return picture


class Publisher:
    """One camera's encoder and relay, supervised: restarted with backoff until cancelled."""

    def __init__(
        self,
        device_id: str,
        supervisor: Callable[[], CameraSupervisor | None],
        rtsp_url: str,
        *,
        ffmpeg: str = "ffmpeg",
        preset: str = "ultrafast",
        tune: str = "zerolatency",
    ) -> None:
        self.device_id = device_id
        self._supervisor = supervisor
        self.rtsp_url = rtsp_url
        self.ffmpeg = ffmpeg
        self.preset = preset
        self.tune = tune
        self.state: State = "STARTING"
        self.pid: int | None = None  # of the relay process
        self.started_at: float | None = None  # monotonic, of the current encoder
        self.start_time = time.time()  # wall clock, of the publisher
        self.frames_sent = 0
        self.bytes_sent = 0
        self.keyframes_sent = 0
        self.frames_skipped = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.camera_gone = trio.Event()
        self.stopped = trio.Event()
        self._retry = trio.Event()
        self._keyframe_wanted = False

    @property
    def running(self) -> bool:
        """True while an encoder is being fed and its relay runs."""
        return self.state == "RUNNING" and self.pid is not None

    def uptime(self) -> float:
        """Seconds the current encoder has run (0 if none)."""
        return round(time.monotonic() - self.started_at, 3) if self.started_at else 0.0

    def retry_now(self) -> None:
        """End a backoff pause at once (MediaMTX is back: waiting longer helps no one)."""
        self._retry.set()

    def force_keyframe(self) -> None:
        """Make the next encoded frame an IDR (a new encoder starts with one anyway)."""
        self._keyframe_wanted = True

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
            try:
                encoder = await trio.to_thread.run_sync(self._open_encoder, fmt)
            except (av.FFmpegError, ValueError) as exc:
                raise EncoderFailed(f"encoder did not open: {exc}") from exc
            proc = await trio.lowlevel.open_process(
                relay_argv(self.rtsp_url, ffmpeg=self.ffmpeg),
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
                            await self._feed(proc, sup, encoder, first.sequence - 1)
                        except (EncoderFailed, CaptureError) as exc:
                            failure.append(str(exc))
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(self._read_stderr, proc, tail)
                    nursery.start_soon(feed)
                    await proc.wait()
                    failure.append(f"relay exited with {proc.returncode}: {' | '.join(tail)}")
                    nursery.cancel_scope.cancel()
                raise EncoderFailed(failure[0][:500] if failure else "encoder stopped")
            finally:
                self.pid = None
                self.started_at = None
                with trio.CancelScope(shield=True):
                    await _kill(proc)

    def _open_encoder(self, fmt: Format) -> H264Encoder:
        return H264Encoder(fmt, preset=self.preset, tune=self.tune)

    async def _feed(
        self, proc: trio.Process, sup: CameraSupervisor, encoder: H264Encoder, after: int
    ) -> None:
        """Encode the newest frame whenever the encoder is free; older ones are skipped."""
        assert proc.stdin is not None
        seq = after
        t0 = time.monotonic()
        self._keyframe_wanted = False  # a new encoder opens with an IDR
        fed = 0
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
            # The relay drops the first packet (the encoder's opening IDR, read while it
            # probes its input) and then every frame up to a key frame: make it the second.
            keyframe = self._keyframe_wanted or fed == 1
            self._keyframe_wanted = False
            pts_ms = int((time.monotonic() - t0) * 1000)
            try:
                out, key = await trio.to_thread.run_sync(
                    functools.partial(encoder.encode, data, pts_ms, keyframe=keyframe)
                )
            except BadFrame as exc:
                self._keyframe_wanted = self._keyframe_wanted or keyframe
                self.frames_skipped += 1
                if self.frames_skipped == 1 or self.frames_skipped % 100 == 0:
                    log.warning(
                        "publisher_frame_skipped",
                        device=self.device_id,
                        skipped=self.frames_skipped,
                        error=str(exc),
                    )
                continue
            except av.FFmpegError as exc:
                raise EncoderFailed(f"encoder failed: {exc}") from exc
            if not out:
                continue
            try:
                await proc.stdin.send_all(out)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise EncoderFailed("relay closed its input") from exc
            fed += 1
            self.frames_sent += 1
            self.bytes_sent += len(out)
            self.keyframes_sent += key

    @staticmethod
    async def _read_stderr(proc: trio.Process, tail: deque[str]) -> None:
        assert proc.stderr is not None
        buf = b""
        async for chunk in proc.stderr:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            tail.extend(line.decode("utf-8", "replace") for line in lines if line.strip())


async def _kill(proc: trio.Process) -> None:
    """End the relay's process group: close stdin, SIGTERM, then SIGKILL after a grace."""
    if proc.stdin is not None:
        await proc.stdin.aclose()
    await end_process_group(proc, signal.SIGTERM, KILL_GRACE_S)
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
        preset: str = "ultrafast",
        tune: str = "zerolatency",
    ) -> None:
        self._supervisor_of = supervisor_of
        self._rtsp_url_of = rtsp_url_of
        self.ffmpeg = ffmpeg
        self.preset = preset
        self.tune = tune
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

    def force_keyframe(self, device_id: str) -> None:
        """Make the camera's next encoded frame an IDR (nothing if it is not published)."""
        run = self._running.get(device_id)
        if run is not None:
            run.publisher.force_keyframe()

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
                preset=self.preset,
                tune=self.tune,
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
