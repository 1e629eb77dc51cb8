"""One supervisor per camera: the capture pump, started on demand and kept warm for a while.

The pump owns the device while it runs: it waits on the device fd with
`trio.lowlevel.wait_readable`, dequeues without blocking and keeps the newest frame. It
starts when a user arrives (`use()`), keeps running while any user holds it and for
`warm_keepalive_s` after the last one leaves, restarts the stream on a stall, and backs off
on repeated failures. An unplug ends it and is reported to the registry. Nothing that
happens here propagates out of `run()`: one camera's failure never touches another.
"""

from __future__ import annotations

import errno
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
import trio

from camsvc.cameras.modes import Mode
from camsvc.capture import Camera, CaptureError, DeviceGone, Format, Frame, FrameTimeout

__all__ = ["CameraSupervisor", "PumpStats"]

log = structlog.get_logger("camsvc.cameras")

# A stream with no frame for this long (or 3 frame intervals, if longer) is restarted.
STALL_MIN_S = 2.0
# Backoff between failed (re)opens: doubles from the first value up to the last.
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 10.0
# fps_measured is the frame count over this window.
FPS_WINDOW_S = 5.0


class PumpStats:
    """Frame counters since the camera connected."""

    __slots__ = ("_times", "frames_captured", "frames_dropped")

    def __init__(self) -> None:
        self.frames_captured = 0
        self.frames_dropped = 0
        self._times: deque[float] = deque()

    def frame(self, now: float) -> None:
        """Count one kept frame."""
        self.frames_captured += 1
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - FPS_WINDOW_S:
            self._times.popleft()

    def fps(self, now: float) -> float:
        """Frames per second over the last FPS_WINDOW_S seconds."""
        self._trim(now)
        return round(len(self._times) / FPS_WINDOW_S, 2)


class CameraSupervisor:
    """Runs and supervises one camera's capture pump."""

    def __init__(
        self,
        device_id: str,
        path: str,
        mode: Mode | None,
        *,
        warm_keepalive_s: float,
        on_gone: Callable[[str, str], None],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.device_id = device_id
        self.path = path
        self.mode = mode
        self.warm_keepalive_s = warm_keepalive_s
        self._on_gone = on_gone
        self._on_change = on_change  # `running` flipped (snapshot_ready changes)
        self.stats = PumpStats()
        self.format: Format | None = None
        self.latest: Frame | None = None
        self.camera: Camera | None = None
        self.last_error: str | None = None
        self._users = 0
        self._demand = trio.Event()
        self._frame_ready = trio.Event()
        self._pump_scope: trio.CancelScope | None = None
        self._gone = False
        self._stream = 0  # counts stream starts; frame sequences restart with each

    # -- users ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the pump holds the device open and streaming."""
        return self.camera is not None and self.format is not None

    @asynccontextmanager
    async def use(self) -> AsyncIterator[CameraSupervisor]:
        """Hold the pump running for the duration (it stays warm afterwards)."""
        self._users += 1
        self._keep_alive_forever()
        self._demand.set()
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                self._keep_alive_until(trio.current_time() + self.warm_keepalive_s)

    def _keep_alive_forever(self) -> None:
        if self._pump_scope is not None:
            self._pump_scope.deadline = math.inf

    def _keep_alive_until(self, deadline: float) -> None:
        if self._pump_scope is not None:
            self._pump_scope.deadline = deadline

    async def wait_frame(self, after_sequence: int = -1) -> Frame:
        """The next frame with a sequence above `after_sequence` (the pump must be in use).

        A stream that restarts counts from 0 again: any frame of a stream started after this
        call counts as new, whatever its sequence.
        """
        stream = self._stream
        while True:
            frame = self.latest
            if frame is not None and (self._stream != stream or frame.sequence > after_sequence):
                return frame
            if self._gone:
                raise DeviceGone(errno.ENODEV, "device disconnected", self.path)
            await self._frame_ready.wait()

    # -- the pump ---------------------------------------------------------------------

    def stop(self) -> None:
        """The node is gone: end the pump and refuse further frames."""
        self._gone = True
        if self._pump_scope is not None:
            self._pump_scope.cancel()
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        self._frame_ready.set()
        self._frame_ready = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start pumps on demand until the camera goes away (or the task is cancelled)."""
        task_status.started()
        backoff = 0.0
        while not self._gone:
            await self._demand.wait()
            self._demand = trio.Event()
            if self._users == 0:
                continue
            if backoff:
                await trio.sleep(backoff)
            try:
                with trio.CancelScope() as scope:
                    self._pump_scope = scope
                    if self._users == 0:
                        scope.deadline = trio.current_time() + self.warm_keepalive_s
                    await self._pump()
                backoff = 0.0
            except DeviceGone as exc:
                log.info("camera_gone", device=self.device_id, error=str(exc))
                self._gone = True
                self._on_gone(self.device_id, str(exc))
            except CaptureError as exc:
                self.last_error = str(exc)
                log.warning("capture_failed", device=self.device_id, error=str(exc))
                backoff = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, 2 * backoff))
            except Exception:
                # A bug in one camera's pump must not take the service down.
                log.exception("pump_crashed", device=self.device_id)
                backoff = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, 2 * backoff))
            finally:
                self._pump_scope = None
                self._wake_waiters()
            if self._users > 0:
                self._demand.set()  # still wanted: go round again (after the backoff)

    async def _pump(self) -> None:
        camera = Camera(self.path)
        mode = self.mode
        # A frame of an earlier stream is never served as this stream's newest.
        self._stream += 1
        self.latest = None
        try:
            fps = mode.fps[0] if mode and mode.fps else None
            self.format = await trio.to_thread.run_sync(
                lambda: camera.open(
                    mode.width if mode else None,
                    mode.height if mode else None,
                    fps,
                    mode.format if mode else None,
                )
            )
            self.camera = camera
            self._on_change()
            log.info(
                "pump_started",
                device=self.device_id,
                format=self.format.fourcc,
                width=self.format.width,
                height=self.format.height,
                fps=self.format.fps,
            )
            stall_s = max(STALL_MIN_S, 3 / self.format.fps if self.format.fps else STALL_MIN_S)
            fd = camera.fileno()
            dropped_before = 0
            while True:
                with trio.move_on_after(stall_s):
                    try:
                        await trio.lowlevel.wait_readable(fd)
                    except trio.ClosedResourceError:
                        # A snapshot read met ENODEV first and closed the camera (as
                        # `read_latest` does when the device is gone).
                        raise DeviceGone(errno.ENODEV, "device gone", self.path) from None
                    frame = camera.read_latest()
                    if frame is not None:
                        self.latest = frame
                        self.stats.frame(trio.current_time())
                        cs = camera.stats()
                        self.stats.frames_dropped += cs.dropped - dropped_before
                        dropped_before = cs.dropped
                        self._wake_waiters()
                    continue
                raise FrameTimeout(
                    errno.ETIMEDOUT, f"stalled: no frame for {stall_s:.1f} s", self.path
                )
        finally:
            was_running = self.camera is not None
            self.camera = None
            self.format = None
            self.latest = None
            camera.close()
            if was_running:
                self._on_change()
            log.info("pump_stopped", device=self.device_id)
