"""The camera registry: local cameras as the API sees them, kept current by discovery.

Owns the `cameraN` entries (CONNECTED, DISCONNECTED for `camera.forget_after`, ERROR with
a reason), probes new nodes through the capture module, runs one supervisor per camera in
its own nursery, and announces every change on the event bus.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import structlog
import trio

from camsvc.cameras.discovery import NodeWatcher
from camsvc.cameras.modes import Mode, choose_mode, modes_of
from camsvc.cameras.supervisor import CameraSupervisor
from camsvc.capture import CaptureError, DeviceInfo, probe
from camsvc.config import CameraConfig
from camsvc.events import EventBus
from camsvc.observability.health import ComponentHealth

__all__ = ["CameraEntry", "CameraRegistry", "Status"]

log = structlog.get_logger("camsvc.cameras")

Status = Literal["CONNECTED", "DISCONNECTED", "ERROR"]
Validation = Literal["CONFIRMED", "DISCONNECTED", "NONE"]


class CameraEntry:
    """What the service knows about one local camera."""

    __slots__ = (
        "connected_at",
        "device_id",
        "disconnected_at",
        "error",
        "info",
        "mode",
        "modes",
        "name",
        "number",
        "path",
        "status",
        "supervisor",
        "validation",
    )

    def __init__(self, number: int, path: str) -> None:
        self.number = number
        self.device_id = f"camera{number}"
        self.path = path
        self.status: Status = "DISCONNECTED"
        self.name = f"Video Device {number}"
        self.info: DeviceInfo | None = None
        self.modes: list[Mode] = []
        self.mode: Mode | None = None
        self.validation: Validation = "NONE"
        self.error: str | None = None
        self.connected_at: float | None = None
        self.disconnected_at: float | None = None
        self.supervisor: CameraSupervisor | None = None

    @property
    def resolution(self) -> str:
        """`WxH` of the mode in use or to be used; `0x0` if never known."""
        return f"{self.mode.width}x{self.mode.height}" if self.mode else "0x0"

    @property
    def fps(self) -> int:
        """Nominal rate of that mode; 0 if never known."""
        return self.mode.fps[0] if self.mode and self.mode.fps else 0


class CameraConnected(msgspec.Struct, frozen=True):
    """Data of `camera.connected`."""

    device: str
    device_path: str
    name: str
    status: str
    resolution: str
    fps: int


class CameraDisconnected(msgspec.Struct, frozen=True):
    """Data of `camera.disconnected`."""

    device: str
    device_path: str
    status: str


class StatusChange(msgspec.Struct, frozen=True):
    """Data of `camera.status_change`."""

    device: str
    name: str
    old_status: str
    new_status: str


Announce = Callable[[CameraEntry], None]


class CameraRegistry:
    """Local cameras, discovery and supervision."""

    def __init__(
        self,
        cfg: CameraConfig,
        bus: EventBus,
        *,
        warm_keepalive_s: float,
        status_update: Announce,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.cfg = cfg
        self.directory = Path(cfg.device_dir)
        self._bus = bus
        self._warm_keepalive_s = warm_keepalive_s
        self._status_update = status_update
        self._clock = clock
        self._entries: dict[int, CameraEntry] = {}
        self._nursery: trio.Nursery | None = None
        self.first_scan_done = False
        self.scanned = trio.Event()  # set once the first scan is complete
        self.scanning = False
        self.failed: str | None = None
        # Bumped on every change to what the camera methods show; lets them cache replies.
        self.version = 0
        self._next_forget = math.inf  # when the next DISCONNECTED camera is forgotten

    # -- queries ----------------------------------------------------------------------

    def now(self) -> float:
        """The registry's clock (Trio's, so tests can drive it)."""
        return self._clock()

    def get(self, device_id: str) -> CameraEntry | None:
        """The listed entry for `cameraN` (forgotten or never-seen ones are None)."""
        if not device_id.startswith("camera"):
            return None
        number = device_id[len("camera") :]
        if not number.isdigit() or (len(number) > 1 and number.startswith("0")):
            return None
        entry = self._entries.get(int(number))
        return entry if entry is not None and self._listed(entry) else None

    def _listed(self, entry: CameraEntry) -> bool:
        if entry.status != "DISCONNECTED":
            return True
        gone = entry.disconnected_at
        return gone is not None and self._clock() - gone < self.cfg.forget_after

    def entries(self) -> list[CameraEntry]:
        """Listed cameras by device number."""
        return [e for _, e in sorted(self._entries.items()) if self._listed(e)]

    def state_key(self) -> int:
        """Changes whenever a listed camera's visible state may have changed (O(1))."""
        if self._clock() >= self._next_forget:
            # A DISCONNECTED camera just dropped out of the list.
            self._bump()
        return self.version

    def _bump(self) -> None:
        self.version += 1
        gone = [e.disconnected_at for e in self._entries.values() if e.disconnected_at is not None]
        expiries = [
            t + self.cfg.forget_after for t in gone if t + self.cfg.forget_after > self._clock()
        ]
        self._next_forget = min(expiries, default=math.inf)

    def connected(self) -> list[CameraEntry]:
        """CONNECTED cameras by device number."""
        return [e for e in self.entries() if e.status == "CONNECTED"]

    def health(self) -> ComponentHealth:
        """The `camera_monitor` component (API.md §10.2)."""
        if self.failed:
            return ComponentHealth("camera_monitor", "unhealthy", self.failed)
        details = {"cameras": len(self.connected()), "device_dir": str(self.directory)}
        if not self.first_scan_done:
            return ComponentHealth(
                "camera_monitor",
                "degraded",
                "first scan running",
                lifecycle="STARTING",
                details=details,
            )
        return ComponentHealth("camera_monitor", "healthy", "watching", details=details)

    # -- running ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Discover and supervise cameras until cancelled."""
        lo, hi = self.cfg.device_range
        watcher = NodeWatcher(self.directory, lo, hi, self.cfg.poll_interval)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.scanning = True
                await nursery.start(watcher.run, self._reconcile)
                self.scanning = False
                self.first_scan_done = True
                self.scanned.set()
                log.info("first_scan_done", cameras=len(self.connected()), dir=str(self.directory))
                task_status.started()
        except Exception as exc:
            self.failed = f"discovery failed: {exc}"
            log.exception("camera_monitor_failed")
            raise

    async def _reconcile(self, present: set[int]) -> None:
        """Bring entries in line with the nodes present."""
        for number, entry in list(self._entries.items()):
            if number not in present and entry.status != "DISCONNECTED":
                self._disconnect(entry, "node removed")
            elif (
                entry.status == "DISCONNECTED" and not self._listed(entry) and number not in present
            ):
                del self._entries[number]
        for number in sorted(present):
            entry = self._entries.get(number)
            if (
                entry is None
                or entry.status == "DISCONNECTED"
                or (entry.status == "ERROR" and entry.supervisor is None)
            ):
                await self._connect(number, entry)

    async def _connect(self, number: int, entry: CameraEntry | None) -> None:
        path = str(self.directory / f"video{number}")
        info: DeviceInfo | None = None
        error: str | None = None
        if self.cfg.probe:
            try:
                info = await trio.to_thread.run_sync(probe, path)
            except CaptureError as exc:
                error = str(exc)
            if info is None and error is None:
                return  # not a capture node (metadata, output, M2M): not a camera
        if entry is None:
            entry = self._entries[number] = CameraEntry(number, path)
        old = entry.status
        if error is not None:
            if entry.status == "ERROR" and entry.error == error:
                return
            entry.status, entry.error = "ERROR", error
            log.warning("camera_error", device=entry.device_id, error=error)
        else:
            entry.status, entry.error = "CONNECTED", None
            entry.info = info
            if info is not None:
                entry.name = info.card or entry.name
                entry.modes = modes_of(info)
                entry.mode = choose_mode(entry.modes)
                entry.validation = "CONFIRMED"
            else:
                entry.validation = "NONE"
            entry.connected_at = self._clock()
            entry.disconnected_at = None
            self._start_supervisor(entry)
            log.info(
                "camera_connected", device=entry.device_id, name=entry.name, mode=entry.resolution
            )
            self._bus.publish(
                "camera.connected",
                CameraConnected(
                    entry.device_id, path, entry.name, "CONNECTED", entry.resolution, entry.fps
                ),
                device=entry.device_id,
            )
        self._changed(entry, old)

    def _start_supervisor(self, entry: CameraEntry) -> None:
        assert self._nursery is not None
        sup = CameraSupervisor(
            entry.device_id,
            entry.path,
            entry.mode,
            warm_keepalive_s=self._warm_keepalive_s,
            on_gone=self._on_gone,
            on_change=self._bump,
        )
        entry.supervisor = sup
        self._nursery.start_soon(sup.run)

    def _on_gone(self, device_id: str, reason: str) -> None:
        entry = self.get(device_id)
        if entry is not None and entry.status == "CONNECTED":
            self._disconnect(entry, reason)

    def _disconnect(self, entry: CameraEntry, reason: str) -> None:
        old = entry.status
        if entry.supervisor is not None:
            entry.supervisor.stop()
            entry.supervisor = None
        entry.status = "DISCONNECTED"
        entry.disconnected_at = self._clock()
        entry.connected_at = None
        if entry.validation == "CONFIRMED":
            entry.validation = "DISCONNECTED"
        log.info("camera_disconnected", device=entry.device_id, reason=reason)
        if old == "CONNECTED":
            self._bus.publish(
                "camera.disconnected",
                CameraDisconnected(entry.device_id, entry.path, "DISCONNECTED"),
                device=entry.device_id,
            )
        self._changed(entry, old)

    def _changed(self, entry: CameraEntry, old: Status) -> None:
        """After a change (and its topic event, already out on its own, first): if the status
        moved, `status_change` and `camera_status_update`, as one write per client."""
        self._bump()  # anything listed may differ (name, mode, error): caches refresh
        if old == entry.status:
            return
        with self._bus.batch():
            self._bus.publish(
                "camera.status_change",
                StatusChange(entry.device_id, entry.name, old, entry.status),
                device=entry.device_id,
            )
            self._status_update(entry)
