"""Recordings of local cameras (API.md §8.4): MediaMTX records the camera's path to fMP4.

Owns: the recording state of each camera (start, first segment, requested duration), the
checks of start_recording in the order the API gives, switching `record` on the path,
waiting for the first segment and for the last one to close, the auto-stop timer, the
end of a recording on unplug or full storage, `recording_status_update` and the
`recording.*` events (their Structs in `recording_messages`), and adding finished segments
to the catalogue. Must not touch: the device or the encoder (it asks `Publishers` for one),
files other than its segments (their file work is in `segments`).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

import structlog
import trio

from camsvc.cameras.registry import CameraRegistry
from camsvc.config import RecordingConfig
from camsvc.errors import CamsvcError, DependencyFailed, InvalidState, NotFound, Unsupported
from camsvc.events import EventBus
from camsvc.media.catalog import Catalog, FileRecord
from camsvc.media.storage import StorageWatch
from camsvc.streaming.mediamtx import (
    MediaMTXClient,
    MediaMTXError,
    MediaMTXNotFound,
    PathConfPatch,
    to_camsvc_error,
)
from camsvc.streaming.paths import PathManager
from camsvc.streaming.publisher import Publishers
from camsvc.streaming.recording_messages import (
    RecordingError,
    RecordingProgress,
    RecordingStart,
    RecordingStarted,
    RecordingStatusUpdate,
    RecordingStop,
    RecordingStopped,
)
from camsvc.streaming.segments import (
    last_write,
    names_in,
    segment_file,
    segment_record,
    segment_sizes,
    segment_start,
    segments_in,
    trim_segment,
)
from camsvc.timefmt import utc_timestamp

__all__ = ["RecordingService"]

log = structlog.get_logger("camsvc.streaming.recordings")

# stop_recording returns once the last segment is closed, at most this late (API.md §8.4).
STOP_TIMEOUT_S: Final = 5.0
# MediaMTX reports each finished segment (runOnRecordSegmentComplete -> `camsvc hook
# segment-complete`); a stop waits this long for the report of its last segment before
# falling back to the segment's size: unchanged for CLOSED_STABLE_S counts as closed.
HOOK_WAIT_S: Final = 2.0
CLOSED_STABLE_S: Final = 0.5
# Poll period of the segment folder and of the recording monitor.
POLL_S: Final = 0.05
MONITOR_S: Final = 0.2
# Storage is checked this often during a recording.
STORAGE_CHECK_S: Final = 2.0

Reason = Literal[
    "requested",
    "duration_elapsed",
    "camera_disconnected",
    "insufficient_storage",
    "shutdown",
    "mediamtx_error",
    "stream_removed",
]


class _Active:
    """One camera's recording in progress."""

    def __init__(self, device: str, fmt: str, duration: float | None, before: set[str]) -> None:
        self.device = device
        self.format = fmt
        self.duration = duration
        self.before = before
        self.filename = ""
        self.start_time = time.time()
        self.started = False  # first segment seen
        self.catalogued: set[str] = set()  # segments already in the catalogue
        # Segments MediaMTX reported complete, with the duration it reported.
        self.completed: dict[str, float | None] = {}
        self.segment_done = trio.Event()  # set (and replaced) on each report
        self.ending = False
        self.scope = trio.CancelScope()


class RecordingService:
    """start_recording / stop_recording and the life of every recording."""

    def __init__(
        self,
        cfg: RecordingConfig,
        cameras: CameraRegistry,
        publishers: Publishers,
        client: MediaMTXClient,
        paths: PathManager,
        storage: StorageWatch,
        catalog: Catalog,
        bus: EventBus,
        *,
        clock: Callable[[], float] = time.time,
        external: Callable[[str], bool] = lambda device: False,
        external_streaming: Callable[[str], bool] = lambda device: False,
        hooks_listening: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = cfg
        self.root = Path(cfg.path)
        self.cameras = cameras
        self.publishers = publishers
        self.client = client
        self.paths = paths
        self.storage = storage
        self.catalog = catalog
        self.bus = bus
        self._clock = clock
        self._external = external  # whether an `ext_` id is an added external stream
        self._external_streaming = external_streaming  # start_streaming keeps it pulled
        # Whether MediaMTX's segment-complete hook can reach camsvc (control socket up).
        self._hooks_listening = hooks_listening
        self._active: dict[str, _Active] = {}
        self._nursery: trio.Nursery | None = None
        self.total_started = 0  # recordings started since the service started

    # -- queries ---------------------------------------------------------------------

    def is_recording(self, device: str) -> bool:
        """Whether a recording of `device` is active (starting or running)."""
        return device in self._active

    @property
    def active_count(self) -> int:
        """Recordings active now (starting or running)."""
        return len(self._active)

    def in_use(self, filename: str) -> bool:
        """Whether `filename` is a segment of an active recording (still being written)."""
        for rec in self._active.values():
            if (
                filename.startswith(f"{rec.device}_")
                and filename not in rec.before
                and filename not in rec.completed
            ):
                return True
        return False

    def _check_source(self, device: str, *, connected: bool) -> None:
        """-32010 unless `device` is an added external stream or a (CONNECTED) camera."""
        if device.startswith("ext_"):
            if not self._external(device):
                raise NotFound("stream", f"no external stream {device}")
            return
        entry = self.cameras.get(device)
        if entry is None or (connected and entry.status != "CONNECTED"):
            raise NotFound("camera", f"no connected camera {device}")

    def _segments(self, rec: _Active) -> list[Path]:
        return segments_in(self.root / rec.device, rec.before)

    def _closed_segments(self, rec: _Active) -> list[Path]:
        """The recording's segments once MediaMTX has closed them, each cut back to its
        whole parts (a write that failed on a full disk leaves a part cut short); those
        MediaMTX reported complete were cut then (`_catalogue_complete`)."""
        closing = self._segments(rec)
        for p in closing:
            if p.name not in rec.completed:
                trim_segment(p)
        return closing

    # -- running ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the recording monitors until cancelled; active recordings end with `shutdown`."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep(math.inf)
        finally:
            with trio.move_on_after(STOP_TIMEOUT_S) as cleanup:
                cleanup.shield = True
                for device, rec in list(self._active.items()):
                    # A start still under way undoes itself (`_abandon`), maybe meanwhile.
                    if self._active.get(device) is rec and rec.started and not rec.ending:
                        await self._finish(device, "shutdown", error=False, switch_off=True)

    # -- start ---------------------------------------------------------------------------

    async def start_recording(
        self, device: str, duration: float | None, fmt: str | None
    ) -> RecordingStarted:
        """Switch recording on and return once MediaMTX created the first segment."""
        self._check_source(device, connected=True)
        fmt = fmt or self.cfg.format
        if fmt == "mkv":
            raise Unsupported("format_unsupported", "MediaMTX records fMP4 (.mp4) only")
        if device in self._active:
            raise InvalidState("already_recording", f"{device} is already recording")
        self.storage.check_room(self.root)
        try:
            await self.client.info()
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        if device in self._active:  # another call started it meanwhile
            raise InvalidState("already_recording", f"{device} is already recording")
        assert self._nursery is not None
        rec = _Active(device, fmt, duration, names_in(self.root / device))
        self._active[device] = rec
        self.cameras.version += 1
        try:
            if not device.startswith("ext_"):  # MediaMTX pulls an external stream itself
                self.publishers.acquire(device, "recording")
            self.paths.set_record(device, True)
            await self._switch(device, True, deadline_s=float(self.cfg.start_timeout))
            self.publishers.force_keyframe(device)
            first = await self._wait_first_segment(rec)
        except BaseException as exc:
            await self._abandon(rec)
            if isinstance(exc, MediaMTXError):
                raise to_camsvc_error(exc) from exc
            raise
        rec.filename = first.name
        # The recording starts with the first segment's first sample (its name says when).
        rec.start_time = segment_start(first.name) or self._clock()
        rec.started = True
        self.total_started += 1
        await trio.to_thread.run_sync(self._catalogue_open, rec)
        log.info("recording_started", device=device, filename=rec.filename, duration=duration)
        with self.bus.batch():
            self.bus.notify_all(
                "recording_status_update",
                RecordingStatusUpdate(device, "STARTED", rec.filename, duration),
            )
            self.bus.publish(
                "recording.start",
                RecordingStart(device, rec.filename, fmt, utc_timestamp(rec.start_time), duration),
                device=device,
            )
        self._nursery.start_soon(self._monitor, rec)
        return RecordingStarted(
            device=device,
            filename=rec.filename,
            status="RECORDING",
            start_time=utc_timestamp(rec.start_time),
            duration=duration,
            format=fmt,
        )

    async def _switch(self, device: str, record: bool, *, deadline_s: float) -> None:
        """Patch `record` on the path now (the path manager may still be adding it)."""
        patch = PathConfPatch(record=record)
        if device.startswith("ext_"):
            # MediaMTX records only a ready path, and pulls an on-demand source only for
            # readers: while recording (or streaming), the source is pulled all the time.
            pulled = record or self._external_streaming(device)
            patch = PathConfPatch(record=record, source_on_demand=not pulled)
        with trio.move_on_after(deadline_s):
            while True:
                try:
                    await self.client.config_path_patch(device, patch)
                    return
                except MediaMTXNotFound:
                    if not record:
                        return
                    await trio.sleep(POLL_S * 2)
        raise DependencyFailed("mediamtx_error", f"path {device} was not added in time")

    async def _wait_first_segment(self, rec: _Active) -> Path:
        timeout = float(self.cfg.start_timeout)
        with trio.move_on_after(timeout):
            while True:
                found = await trio.to_thread.run_sync(self._segments, rec)
                if found:
                    return found[0]
                self._check_source(rec.device, connected=False)
                if rec.device not in self._active:
                    raise NotFound("camera", f"{rec.device} went away")
                # MediaMTX's recorder may attach to the path after the key frame forced at
                # the switch: ask again until a segment starts (at most one IDR per poll).
                self.publishers.force_keyframe(rec.device)
                await trio.sleep(POLL_S)
        raise DependencyFailed("mediamtx_error", f"no segment after {timeout:g} s")

    async def _abandon(self, rec: _Active) -> None:
        """Undo a start that failed: record off (best effort), publisher released."""
        with trio.CancelScope(shield=True):
            self.paths.set_record(rec.device, False)
            with trio.move_on_after(2):
                try:
                    await self._switch(rec.device, False, deadline_s=2)
                except (MediaMTXError, CamsvcError) as exc:
                    log.warning("record_off_failed", device=rec.device, error=str(exc))
            self.publishers.release(rec.device, "recording")
            if self._active.get(rec.device) is rec:
                del self._active[rec.device]
                self.cameras.version += 1

    # -- stop ------------------------------------------------------------------------

    async def stop_recording(self, device: str) -> RecordingStopped:
        """Switch recording off and return once the last segment is closed."""
        self._check_source(device, connected=False)
        rec = self._active.get(device)
        if rec is None or not rec.started or rec.ending:
            raise InvalidState("not_recording", f"{device} is not recording")
        try:
            await self.client.info()
        except MediaMTXError as exc:
            raise to_camsvc_error(exc) from exc
        return await self._finish(device, "requested", error=False, switch_off=True)

    async def end_all(self, reason: Reason, *, switch_off: bool = False) -> list[RecordingStopped]:
        """End every running recording with ERROR `reason`; `switch_off` only if MediaMTX
        answers (a restarted one may have been given `record` back by a reconcile).

        The segments written so far are catalogued; starting recordings fail by themselves.
        """
        ended: list[RecordingStopped] = []

        async def end(device: str, rec: _Active) -> None:
            if not (rec.started and not rec.ending and self._active.get(device) is rec):
                return
            try:
                stopped = await self._finish(
                    device, reason, error=True, switch_off=switch_off, at_last_write=True
                )
            except (CamsvcError, OSError) as exc:
                log.warning("recording_end_failed", device=device, error=str(exc))
            else:
                ended.append(stopped)

        async with trio.open_nursery() as nursery:
            for device, rec in list(self._active.items()):
                nursery.start_soon(end, device, rec)
        return ended

    async def end_for_removal(self, device: str) -> None:
        """Stop the recording of an external stream being removed (reason `stream_removed`)."""
        rec = self._active.get(device)
        if rec is not None and rec.started and not rec.ending:
            await self._finish(device, "stream_removed", error=False, switch_off=True)

    async def _finish(
        self,
        device: str,
        reason: Reason,
        *,
        error: bool,
        switch_off: bool,
        at_last_write: bool = False,
    ) -> RecordingStopped:
        """End a recording: record off, wait for the last segment, catalogue, announce.

        `at_last_write`: MediaMTX stopped writing before camsvc noticed (it went away), so
        the recording ended with the last write into a segment if that is earlier than now.
        """
        rec = self._active[device]
        rec.ending = True
        end = self._clock()
        # Before the patch: a reconcile running meanwhile must not switch record back on.
        self.paths.set_record(device, False)
        if switch_off:
            try:
                await self._switch(device, False, deadline_s=STOP_TIMEOUT_S)
            except (MediaMTXError, CamsvcError) as exc:
                log.warning("record_off_failed", device=device, error=str(exc))
                if reason == "requested":
                    rec.ending = False  # still recording: the caller gets -32050
                    self.paths.set_record(device, True)
                    if isinstance(exc, MediaMTXError):
                        raise to_camsvc_error(exc) from exc
                    raise
        rec.scope.cancel()
        # MediaMTX reports the last segment only if it is there to switch recording off,
        # and the report cannot arrive at shutdown (the control socket closes too).
        await self._wait_closed(rec, reported=switch_off and reason != "shutdown")
        if at_last_write:
            end = min(end, await trio.to_thread.run_sync(self._last_write, rec) or end)
        self.publishers.release(device, "recording")
        del self._active[device]
        self.cameras.version += 1
        segments = await trio.to_thread.run_sync(self._closed_segments, rec)
        result = self._catalogue(rec, segments, end)
        log.info(
            "recording_stopped",
            device=device,
            reason=reason,
            segments=len(segments),
            duration=result.duration,
        )
        status: Literal["STOPPED", "ERROR"] = "ERROR" if error else "STOPPED"
        event: RecordingError | RecordingStop
        if error:
            topic = "recording.error"
            event = RecordingError(device, rec.filename, reason, f"recording ended: {reason}")
        else:
            topic = "recording.stop"
            event = RecordingStop(
                device, rec.filename, result.end_time, result.duration, result.file_size, reason
            )
        with self.bus.batch():
            self.bus.notify_all(
                "recording_status_update",
                RecordingStatusUpdate(device, status, rec.filename, result.duration, reason),
            )
            self.bus.publish(topic, event, device=device)
        return result

    # -- segment completion -------------------------------------------------------------

    async def segment_complete(self, device: str, segment: str, duration: float | None) -> None:
        """MediaMTX finished `segment` of `device`: catalogue it, wake a stop waiting for it.

        ValueError if `segment` is not a recording segment of `device` under the recordings
        folder (the hook's word is not taken for any other file).
        """
        file = segment_file(self.root, device, segment)
        rec = self._active.get(device)
        if rec is not None and file.name not in rec.before:
            rec.completed[file.name] = duration
            rec.catalogued.add(file.name)
            rec.segment_done.set()
            rec.segment_done = trio.Event()
        log.info("segment_complete", device=device, segment=file.name, duration=duration)
        await trio.to_thread.run_sync(self._catalogue_complete, device, file, duration)

    def _catalogue_complete(self, device: str, file: Path, duration: float | None) -> None:
        trim_segment(file)
        if (record := segment_record(file, device, duration=duration)) is not None:
            self._add_to_catalogue(record)

    async def _wait_closed(self, rec: _Active, *, reported: bool) -> None:
        """Wait (≤ STOP_TIMEOUT_S) until MediaMTX has closed every segment of the recording.

        MediaMTX's report of each finished segment is the signal; without one within
        HOOK_WAIT_S (a MediaMTX without the hook, or the control socket down), the
        segments' sizes are watched instead.
        """
        with trio.move_on_after(STOP_TIMEOUT_S):
            if reported and self._hooks_listening():
                with trio.move_on_after(HOOK_WAIT_S):
                    await self._wait_reported(rec)
                    return
                log.warning(
                    "segment_complete_missing",
                    device=rec.device,
                    waited_s=HOOK_WAIT_S,
                    message="no runOnRecordSegmentComplete report; watching file sizes",
                )
            await self._wait_stable(rec)

    async def _wait_reported(self, rec: _Active) -> None:
        """Return once every segment on disk has been reported complete."""
        while True:
            done = rec.segment_done
            names = {p.name for p in await trio.to_thread.run_sync(self._segments, rec)}
            if names <= rec.completed.keys():
                return
            await done.wait()

    async def _wait_stable(self, rec: _Active) -> None:
        """Return once no segment has grown for CLOSED_STABLE_S."""
        last: dict[str, int] = {}
        stable_since = trio.current_time()
        while True:
            sizes = await trio.to_thread.run_sync(self._sizes, rec)
            if sizes != last:
                last = sizes
                stable_since = trio.current_time()
            elif trio.current_time() - stable_since >= CLOSED_STABLE_S:
                return
            await trio.sleep(POLL_S)

    def _last_write(self, rec: _Active) -> float | None:
        """When a segment of the recording was last written (None without a segment)."""
        return last_write(self._segments(rec))

    def _sizes(self, rec: _Active) -> dict[str, int]:
        return segment_sizes(self._segments(rec))

    def _add_to_catalogue(self, record: FileRecord) -> bool:
        """Add or update a segment's row; False when the catalogue refused the write."""
        try:
            self.catalog.add(record)
        except sqlite3.Error as exc:
            # Locked by another connection or damaged: the segment is safe on disk, and the
            # library's watch catalogues it once the catalogue takes writes again.
            log.warning("segment_not_catalogued", filename=record.filename, error=str(exc))
            return False
        return True

    def _catalogue_open(self, rec: _Active) -> None:
        """Catalogue segments being written (size so far, duration unknown) not yet listed."""
        for p in self._segments(rec):
            if p.name in rec.catalogued:
                continue
            record = segment_record(p, rec.device)
            if record is not None and self._add_to_catalogue(record):
                rec.catalogued.add(p.name)

    def _catalogue(self, rec: _Active, segments: list[Path], end: float) -> RecordingStopped:
        """Add the segments to the catalogue (with durations) and build the stop result."""
        total = 0
        starts = [segment_start(p.name) or rec.start_time for p in segments]
        for i, p in enumerate(segments):
            seg_end = starts[i + 1] if i + 1 < len(segments) else end
            reported = rec.completed.get(p.name)  # MediaMTX's own figure, when it gave one
            duration = reported if reported is not None else max(0.0, seg_end - starts[i])
            record = segment_record(p, rec.device, created=starts[i], duration=duration)
            if record is not None:
                total += record.size
                self._add_to_catalogue(record)
        first_start = starts[0] if starts else rec.start_time
        return RecordingStopped(
            device=rec.device,
            filename=rec.filename,
            status="STOPPED",
            start_time=utc_timestamp(rec.start_time),
            end_time=utc_timestamp(end),
            duration=round(max(0.0, end - first_start), 3),
            file_size=total,
            format=rec.format,
            segments=[p.name for p in segments],
        )

    # -- the monitor -------------------------------------------------------------------

    async def _progress(self, rec: _Active) -> None:
        """Publish `recording.progress`: the current segment and the bytes written so far."""
        sizes = await trio.to_thread.run_sync(self._sizes, rec)
        current = max(sizes, key=lambda n: segment_start(n) or 0.0) if sizes else rec.filename
        elapsed = round(max(0.0, self._clock() - rec.start_time), 3)
        self.bus.publish(
            "recording.progress",
            RecordingProgress(rec.device, current, elapsed, sum(sizes.values())),
            device=rec.device,
        )

    async def _monitor(self, rec: _Active) -> None:
        """End the recording on its duration, on unplug, or when storage is full."""
        structlog.contextvars.clear_contextvars()  # not the starting request's task
        reason: Reason | None = None
        error = False
        next_storage = trio.current_time() + STORAGE_CHECK_S
        progress_s = float(self.cfg.progress_interval)
        next_progress = trio.current_time() + progress_s
        with rec.scope:
            while reason is None:
                wait = MONITOR_S
                if rec.duration is not None:
                    left = rec.start_time + rec.duration - self._clock()
                    if left <= 0:
                        reason = "duration_elapsed"
                        break
                    wait = min(wait, left)
                await trio.sleep(wait)
                entry = self.cameras.get(rec.device)
                if rec.device.startswith("ext_"):
                    pass  # MediaMTX re-pulls a lost source; removal ends it (end_for_removal)
                elif entry is None or entry.status != "CONNECTED":
                    reason, error = "camera_disconnected", True
                elif trio.current_time() >= next_storage:
                    next_storage = trio.current_time() + STORAGE_CHECK_S
                    try:
                        self.storage.check_room(self.root)
                    except CamsvcError:
                        reason, error = "insufficient_storage", True
                    else:
                        await trio.to_thread.run_sync(self._catalogue_open, rec)
                if reason is None and progress_s > 0 and trio.current_time() >= next_progress:
                    next_progress = trio.current_time() + progress_s
                    await self._progress(rec)
        if reason is None or rec.ending or self._active.get(rec.device) is not rec:
            return
        try:
            await self._finish(rec.device, reason, error=error, switch_off=True)
        except CamsvcError as exc:
            log.warning("recording_end_failed", device=rec.device, error=str(exc))
