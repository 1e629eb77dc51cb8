"""Snapshots: a fresh frame from the camera's pump, as JPEG (the C module) or PNG, on disk.

A snapshot never returns a frame captured before its request arrived: it waits for a frame
whose capture timestamp is at or after the request (one frame interval at most when the
camera is warm). Files are written to a hidden temporary name, fsynced, hard-linked to
their final name (which fails rather than overwrite) and the directory fsynced, so a crash
leaves no visible partial file and two snapshots never share a name.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import msgspec
import structlog
import trio

from camsvc.cameras.registry import CameraRegistry
from camsvc.cameras.supervisor import CameraSupervisor
from camsvc.capture import CaptureError, Frame, JpegFrame
from camsvc.config import SnapshotsConfig
from camsvc.errors import InsufficientStorage, InternalError, InvalidParams, NotFound
from camsvc.events import EventBus
from camsvc.media.catalog import Catalog, FileRecord
from camsvc.media.names import check_snapshot_name, download_url, generated_snapshot_name
from camsvc.media.storage import StorageWatch
from camsvc.timefmt import utc_timestamp

__all__ = ["SnapshotResult", "SnapshotTaken", "Snapshots"]

log = structlog.get_logger("camsvc.snapshots")

Format = Literal["jpeg", "png"]
_EXTENSIONS: dict[Format, tuple[str, ...]] = {"jpeg": (".jpg", ".jpeg"), "png": (".png",)}
# Tries for a generated name before giving up (a collision needs the same second and suffix).
_NAME_TRIES = 8


class SnapshotResult(msgspec.Struct, frozen=True):
    """The result of `take_snapshot`."""

    device: str
    filename: str
    status: Literal["SUCCESS"]
    timestamp: str
    file_size: int
    file_path: str
    download_url: str
    width: int
    height: int
    format: Format
    capture_ms: float


class SnapshotTaken(msgspec.Struct, frozen=True):
    """Data of the `snapshot.taken` topic."""

    device: str
    filename: str
    file_size: int
    width: int
    height: int
    format: Format
    download_url: str


# Grabs one JPEG of an `ext_` stream: (device, quality, max_size, timeout_s) -> frame.
GrabExternal = Callable[[str, int, tuple[int, int] | None, float], Awaitable[JpegFrame]]


def _capture_failed(details: str) -> InternalError:
    return InternalError("capture_failed", details)


def write_exclusive(directory: Path, name: str, data: bytes) -> os.stat_result:
    """Write `data` as `directory/name` atomically; FileExistsError if the name is taken."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, directory / name)  # atomic, and refuses to replace an existing file
    finally:
        tmp.unlink(missing_ok=True)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return os.stat(directory / name)


def remove_stale_temporaries(root: Path) -> int:
    """Delete `.*.tmp` files left in `root/<device>/` by a crash; returns how many."""
    removed = 0
    for tmp in root.glob("*/.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def _to_png(jpeg: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as img:
        out = io.BytesIO()
        img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


class Snapshots:
    """Takes snapshots of local cameras into `<snapshots.path>/<device>/`."""

    def __init__(
        self,
        cfg: SnapshotsConfig,
        cameras: CameraRegistry,
        catalog: Catalog,
        storage: StorageWatch,
        bus: EventBus,
        on_snapshot: Callable[[str, float], None] = lambda device, seconds: None,
        *,
        external: Callable[[str], bool] = lambda device: False,
        grab_external: GrabExternal | None = None,
    ) -> None:
        self.cfg = cfg
        # `ext_` devices: frames come from the external stream's RTSP output (MediaMTX).
        self._external = external
        self._grab_external = grab_external
        self._on_snapshot = on_snapshot
        self.root = Path(cfg.path)
        self._cameras = cameras
        self._catalog = catalog
        self._storage = storage
        self._bus = bus
        self._reserved: set[str] = set()  # names being written right now

    def _name(self, device: str, filename: str | None, fmt: Format) -> str:
        if filename is None:
            return generated_snapshot_name(device, "png" if fmt == "png" else "jpg")
        check_snapshot_name(filename)
        ext = os.path.splitext(filename)[1].lower()
        if ext in (".jpg", ".jpeg", ".png"):
            if ext not in _EXTENSIONS[fmt]:
                raise InvalidParams(
                    "invalid_filename",
                    f"extension {ext} does not fit format {fmt}",
                    param="filename",
                )
            return filename
        return f"{filename}{_EXTENSIONS[fmt][0]}"

    def _taken(self, name: str) -> bool:
        return name in self._reserved or self._catalog.get("snapshot", name) is not None

    def _claim(self, device: str, filename: str | None, fmt: Format) -> str:
        """A free name, reserved until released (no await between the check and the claim)."""
        name = self._name(device, filename, fmt)
        if filename is not None:
            if self._taken(name):
                raise InvalidParams("filename_exists", f"{name} already exists", param="filename")
        else:
            for _ in range(_NAME_TRIES):
                if not self._taken(name):
                    break
                name = self._name(device, None, fmt)
            else:
                raise InternalError("internal_error", "could not find a free snapshot name")
        self._reserved.add(name)
        return name

    async def take(
        self,
        device: str,
        *,
        filename: str | None = None,
        fmt: Format | None = None,
        quality: int | None = None,
        max_size: tuple[int, int] | None = None,
    ) -> SnapshotResult:
        """Take one snapshot; raises the API errors of take_snapshot."""
        received = time.monotonic()
        fmt = fmt or self.cfg.format
        quality = quality or self.cfg.quality
        if max_size is None and (self.cfg.max_width or self.cfg.max_height):
            max_size = (self.cfg.max_width or 16384, self.cfg.max_height or 16384)
        entry = self._cameras.get(device)
        grab = self._grab_external if device.startswith("ext_") else None
        if grab is not None:
            if not self._external(device):
                raise NotFound("stream", f"no external stream {device}")
        elif entry is None or entry.status != "CONNECTED" or entry.supervisor is None:
            raise NotFound("camera", f"{device} is not connected")
        claims = [self._claim(device, filename, fmt)]
        try:
            self._storage.check_room(self.root)
            if grab is not None:
                jpeg = await grab(device, quality, max_size, float(self.cfg.timeout))
                captured = jpeg.timestamp
            else:
                assert entry is not None and entry.supervisor is not None
                frame, jpeg = await self._capture(entry.supervisor, received, quality, max_size)
                captured = frame.timestamp
            data = jpeg.data if fmt == "jpeg" else await trio.to_thread.run_sync(_to_png, jpeg.data)
            name, st = await self._write(device, claims, data, fmt, generated=filename is None)
        finally:
            self._reserved.difference_update(claims)
        captured_wall = time.time() - (time.monotonic() - captured)
        try:
            self._catalog.add(
                FileRecord("snapshot", name, device, st.st_size, st.st_mtime, captured_wall,
                           jpeg.width, jpeg.height)
            )  # fmt: skip
        except sqlite3.Error as exc:
            # The file is written and durable; the library's watch catalogues it once the
            # catalogue takes writes again (locked by another connection, or rebuilt).
            log.warning("snapshot_not_catalogued", filename=name, error=str(exc))
        url = download_url("snapshot", name)
        self._bus.publish(
            "snapshot.taken",
            SnapshotTaken(device, name, st.st_size, jpeg.width, jpeg.height, fmt, url),
            device=device,
        )
        elapsed = time.monotonic() - received
        capture_ms = round(elapsed * 1000, 3)
        self._on_snapshot(device, elapsed)
        log.info("snapshot", device=device, filename=name, bytes=st.st_size, ms=capture_ms)
        return SnapshotResult(
            device=device,
            filename=name,
            status="SUCCESS",
            timestamp=utc_timestamp(captured_wall),
            file_size=st.st_size,
            file_path=f"{device}/{name}",
            download_url=url,
            width=jpeg.width,
            height=jpeg.height,
            format=fmt,
            capture_ms=capture_ms,
        )

    async def _capture(
        self,
        sup: CameraSupervisor,
        received: float,
        quality: int,
        max_size: tuple[int, int] | None,
    ) -> tuple[Frame, JpegFrame]:
        try:
            with trio.fail_after(self.cfg.timeout):
                async with sup.use():
                    # The first frame captured at or after the request arrived.
                    frame = sup.latest
                    while frame is None or frame.timestamp < received:
                        frame = await sup.wait_frame(frame.sequence if frame else -1)
                    return frame, await self._encode(sup, quality, max_size)
        except trio.TooSlowError as exc:
            raise _capture_failed(f"no frame within {self.cfg.timeout} s") from exc
        except CaptureError as exc:
            raise _capture_failed(str(exc)) from exc

    @staticmethod
    async def _encode(
        sup: CameraSupervisor, quality: int, max_size: tuple[int, int] | None
    ) -> JpegFrame:
        camera = sup.camera
        if camera is None:
            raise _capture_failed("capture stopped")
        job = camera.jpeg_job(quality, max_size)
        if job is None:
            raise _capture_failed("no frame available")
        result = await trio.to_thread.run_sync(job.run) if job.heavy else job.run()
        camera.remember(job)
        return result

    async def _write(
        self, device: str, claims: list[str], data: bytes, fmt: Format, *, generated: bool
    ) -> tuple[str, os.stat_result]:
        """Write the file under the last claimed name; a generated name taken on disk is
        drawn again (each new claim is appended to `claims`, which the caller releases)."""
        directory = self.root / device
        name = claims[-1]
        for _ in range(_NAME_TRIES):
            try:
                return name, await trio.to_thread.run_sync(write_exclusive, directory, name, data)
            except FileExistsError:
                if not generated:
                    raise InvalidParams(
                        "filename_exists", f"{name} already exists", param="filename"
                    ) from None
                name = self._claim(device, None, fmt)
                claims.append(name)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise InsufficientStorage(
                        "insufficient_storage",
                        "no space left for the snapshot",
                        block_percent=self._storage.block_percent,
                    ) from exc
                raise
        raise InternalError("internal_error", "could not find a free snapshot name")
