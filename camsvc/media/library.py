"""The media library: listing, inspecting and deleting snapshots and recordings, storage figures,
and keeping the catalogue in step with the media folders (at start-up and on inotify events).

The catalogue is an index of the files, so keeping it in step survives its faults: a
reconcile that finds it locked by another connection is retried with backoff, and a damaged
database is set aside and rebuilt from the files (`Catalog.repair`, then a reconcile).
"""

from __future__ import annotations

import errno
import functools
import operator
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import inotify_simple
import msgspec
import structlog
import trio
from msgspec import UNSET, UnsetType

from camsvc.errors import InvalidState, NotFound
from camsvc.ids import DEVICE_ID_RE
from camsvc.media.catalog import Catalog, FileRecord, Kind, is_corrupt
from camsvc.media.names import download_url
from camsvc.media.storage import StorageWatch, usage_of
from camsvc.timefmt import utc_timestamp

__all__ = ["DeleteResult", "FileEntry", "FileList", "MediaLibrary", "StorageInfo"]

log = structlog.get_logger("camsvc.media")

_FORMATS = {".mp4": "fmp4", ".mkv": "mkv", ".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}
# Bursts of file events are folded into one reconcile at most this often.
RECONCILE_DEBOUNCE_S = 0.2
# A reconcile the catalogue refused (locked, or a write error) is retried after this, doubling.
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 10.0
_WATCH_MASK = (
    inotify_simple.flags.CREATE
    | inotify_simple.flags.DELETE
    | inotify_simple.flags.CLOSE_WRITE
    | inotify_simple.flags.MOVED_FROM
    | inotify_simple.flags.MOVED_TO
    | inotify_simple.flags.DELETE_SELF
)


class FileEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """A FileEntry (API.md §6); recordings carry `duration`, info methods `created_time`."""

    filename: str
    file_size: int
    modified_time: str
    download_url: str
    device: str | None
    format: str
    duration: float | UnsetType | None = UNSET
    created_time: str | UnsetType = UNSET
    width: int | UnsetType = UNSET
    height: int | UnsetType = UNSET


class FileList(msgspec.Struct, frozen=True):
    """The result of list_recordings / list_snapshots."""

    files: list[FileEntry]
    total: int
    limit: int
    offset: int


class DeleteResult(msgspec.Struct, frozen=True):
    """The result of delete_recording / delete_snapshot."""

    filename: str
    deleted: bool
    message: str


class StorageInfo(msgspec.Struct, frozen=True):
    """The result of get_storage_info."""

    total_space: int
    used_space: int
    available_space: int
    usage_percentage: float
    recordings_size: int
    snapshots_size: int
    low_space_warning: bool
    warn_percent: float
    block_percent: float
    blocked: bool


InUse = Callable[[str], bool]


class MediaLibrary:
    """Snapshots and recordings as the file methods see them."""

    def __init__(
        self,
        catalog: Catalog,
        roots: dict[Kind, Path],
        storage: StorageWatch,
        *,
        recording_in_use: InUse = lambda filename: False,
    ) -> None:
        self.catalog = catalog
        self.roots = roots
        self._storage = storage
        self._recording_in_use = recording_in_use
        self.ready = trio.Event()
        self._damaged = trio.Event()
        #: Times the catalogue was found damaged and rebuilt from the files.
        self.rebuilds = 1 if catalog.set_aside is not None else 0

    # -- queries ----------------------------------------------------------------------

    def _path(self, rec: FileRecord) -> Path:
        return self.roots[rec.kind] / rec.subdir / rec.filename

    def _entry(self, rec: FileRecord, *, info: bool) -> FileEntry:
        size, mtime = rec.size, rec.mtime
        if rec.kind == "recording":
            # A segment grows while MediaMTX writes it: report its current size.
            try:
                st = os.stat(self._path(rec))
                size, mtime = st.st_size, st.st_mtime
            except FileNotFoundError:
                pass
        ext = os.path.splitext(rec.filename)[1].lower()
        return FileEntry(
            filename=rec.filename,
            file_size=size,
            modified_time=utc_timestamp(mtime),
            download_url=download_url(rec.kind, rec.filename),
            device=rec.subdir if DEVICE_ID_RE.fullmatch(rec.subdir) else None,
            format=_FORMATS.get(ext, ext.lstrip(".")),
            duration=rec.duration if rec.kind == "recording" else UNSET,
            created_time=utc_timestamp(rec.created) if info else UNSET,
            width=rec.width if info and rec.width is not None else UNSET,
            height=rec.height if info and rec.height is not None else UNSET,
        )

    def page(self, kind: Kind, limit: int, offset: int, device: str | None) -> FileList:
        """One page, newest first."""
        records, total = self.catalog.page(kind, limit, offset, device)
        return FileList([self._entry(r, info=False) for r in records], total, limit, offset)

    def _find(self, kind: Kind, filename: str) -> FileRecord:
        rec = self.catalog.get(kind, filename)
        if rec is None or not os.path.lexists(self._path(rec)):
            raise NotFound(kind, f"no {kind} named {filename}")
        return rec

    def info(self, kind: Kind, filename: str) -> FileEntry:
        """One file, with created_time (and dimensions for snapshots)."""
        return self._entry(self._find(kind, filename), info=True)

    def locate(self, kind: Kind, filename: str) -> Path | None:
        """The path of a catalogued file that exists (for downloads), else None."""
        rec = self.catalog.get(kind, filename)
        if rec is None:
            return None
        path = self._path(rec)
        return path if path.is_file() and not path.is_symlink() else None

    def delete(self, kind: Kind, filename: str) -> DeleteResult:
        """Delete a file and forget it."""
        rec = self._find(kind, filename)
        if kind == "recording" and self._recording_in_use(filename):
            raise InvalidState("file_in_use", f"{filename} is still being written")
        self.unlink(rec)
        self.catalog.remove(kind, filename)
        log.info("file_deleted", kind=kind, filename=filename, reason="requested")
        message = "Recording deleted" if kind == "recording" else "Snapshot deleted"
        return DeleteResult(filename, True, message)

    def unlink(self, rec: FileRecord) -> int:
        """Remove a catalogued file from disk; its size, or 0 when it is already gone.

        The device folder is opened without following a symlink and the file removed relative
        to it, so a folder replaced by a link to elsewhere never leads outside the roots.
        """
        try:
            dir_fd = os.open(
                self.roots[rec.kind] / rec.subdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
            )
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return 0
            raise
        try:
            size = os.stat(rec.filename, dir_fd=dir_fd, follow_symlinks=False).st_size
            os.unlink(rec.filename, dir_fd=dir_fd)
            return size
        except FileNotFoundError:
            return 0
        finally:
            os.close(dir_fd)

    def storage_info(self) -> StorageInfo:
        """Usage of the recordings filesystem and bytes under each root."""
        usage = usage_of(self.roots["recording"])
        return StorageInfo(
            total_space=usage.total_space,
            used_space=usage.used_space,
            available_space=usage.available_space,
            usage_percentage=usage.usage_percentage,
            recordings_size=self.catalog.total_size("recording"),
            snapshots_size=self.catalog.total_size("snapshot"),
            low_space_warning=usage.usage_percentage >= self._storage.warn_percent,
            warn_percent=self._storage.warn_percent,
            block_percent=self._storage.block_percent,
            blocked=usage.usage_percentage >= self._storage.block_percent,
        )

    # -- keeping in step with the disk --------------------------------------------------

    async def reconcile(self) -> None:
        """Bring the catalogue in line with both roots (in a worker, with its own connection)."""
        for kind, root in self.roots.items():
            added, removed = await trio.to_thread.run_sync(
                _reconcile_in_worker, self.catalog.path, kind, root
            )
            if added or removed:
                log.info("catalog_reconciled", kind=kind, added=added, removed=removed)
        self.catalog.changed()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reconcile at start, then whenever the media folders change, until cancelled."""
        if self.catalog.set_aside is not None:
            log.error("catalog_rebuilt", set_aside=str(self.catalog.set_aside), at="start")
        token = trio.lowlevel.current_trio_token()
        # A query may find the damage in any task (or a worker thread): hand it to this loop.
        self.catalog.on_corrupt = functools.partial(token.run_sync_soon, self._damaged.set)
        inotify = inotify_simple.INotify(nonblocking=True)
        watched: dict[int, Path] = {}
        try:
            self._watch_tree(inotify, watched)
            await self._catch_up()
            self.ready.set()
            # Requests are served before this (from the catalogue as it was); after it the
            # catalogue matches the disk.
            log.info(
                "catalog_ready",
                snapshots=self.catalog.page("snapshot", 1, 0)[1],
                recordings=self.catalog.page("recording", 1, 0)[1],
            )
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._repair_when_damaged)
                fd = inotify.fileno()
                while True:
                    await trio.lowlevel.wait_readable(fd)
                    await trio.sleep(RECONCILE_DEBOUNCE_S)
                    events = inotify.read(timeout=0)
                    self._watch_tree(inotify, watched)
                    await self._follow(events, watched)
        finally:
            self.catalog.on_corrupt = lambda: None
            trio.lowlevel.notify_closing(inotify.fileno())
            inotify.close()

    async def _catch_up(self) -> None:
        """Reconcile until it succeeds: retried while the catalogue refuses, rebuilt if damaged."""
        delay = RETRY_FIRST_S
        while True:
            try:
                await self.reconcile()
                return
            except sqlite3.Error as exc:
                if is_corrupt(exc) and self._repair(str(exc)):
                    continue
                # Locked by another connection, or a write error (a full disk): the files are
                # safe either way, so keep serving and try again.
                log.warning("catalog_reconcile_failed", error=str(exc), retry_s=delay)
                await trio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX_S)

    def _repair(self, error: str) -> bool:
        """Set a damaged catalogue aside (True), or False when a fresh look finds it sound."""
        aside = self.catalog.repair()
        if aside is None:
            return False
        self.rebuilds += 1
        log.error("catalog_rebuilt", error=error, set_aside=str(aside))
        return True

    async def _repair_when_damaged(self) -> None:
        while True:
            await self._damaged.wait()
            self._damaged = trio.Event()
            if self._repair("a query found the catalogue damaged"):
                await self._catch_up()

    async def _follow(self, events: list[inotify_simple.Event], watched: dict[int, Path]) -> None:
        """Bring the catalogue in line with what `events` changed: only the files they name
        when that says it all, a whole reconcile otherwise (a folder came or went, events were
        lost, the catalogue could not answer)."""
        stale: dict[tuple[Kind, Path], set[str]] = {}
        try:
            for event in events:
                if (where := self._unexplained(event, watched)) is not None:
                    stale.setdefault(where, set()).add(event.name)
            for (kind, folder), names in stale.items():
                refresh = operator.methodcaller("refresh", kind, folder, names)
                await trio.to_thread.run_sync(_in_worker, self.catalog.path, refresh)
        except (_RescanNeeded, sqlite3.Error):
            # Not about one file, or the catalogue could not answer or take the write: a
            # whole reconcile copes with both.
            await self._catch_up()
            return
        if stale:
            self.catalog.changed()

    def _unexplained(
        self, event: inotify_simple.Event, watched: dict[int, Path]
    ) -> tuple[Kind, Path] | None:
        """The kind and folder of an event's file when the catalogue does not reflect it yet
        (None: it does, as for the service's own writes). _RescanNeeded when an event is not
        about one file (a folder came or went, the queue overflowed)."""
        directory = watched.get(event.wd)
        if directory is None or not event.name or event.mask & inotify_simple.flags.Q_OVERFLOW:
            raise _RescanNeeded
        if event.name.startswith("."):
            return None  # temporaries and hidden files are never catalogued
        kind = next((k for k, root in self.roots.items() if directory.parent == root), None)
        if kind is None:
            raise _RescanNeeded  # a device folder came or went
        return None if self._explained(kind, directory, event) else (kind, directory)

    def _explained(self, kind: Kind, directory: Path, event: inotify_simple.Event) -> bool:
        """True when the catalogue already reflects this event on a file of `directory`."""
        rec = self.catalog.get(kind, event.name)
        if event.mask & (inotify_simple.flags.DELETE | inotify_simple.flags.MOVED_FROM):
            return rec is None or rec.subdir != directory.name
        try:
            size = (directory / event.name).stat().st_size
        except FileNotFoundError:
            return rec is None
        return rec is not None and rec.subdir == directory.name and rec.size == size

    def _watch_tree(self, inotify: inotify_simple.INotify, watched: dict[int, Path]) -> None:
        """Watch each root and its per-device subdirectories (new ones included)."""
        known = set(watched.values())
        for root in self.roots.values():
            dirs = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
            for d in dirs:
                if d not in known:
                    try:
                        watched[inotify.add_watch(d, _WATCH_MASK)] = d
                    except OSError as exc:
                        log.warning("media_watch_failed", dir=str(d), error=exc.strerror)


_T = TypeVar("_T")


class _RescanNeeded(Exception):
    """An inotify event that only a whole reconcile can follow."""


def _in_worker(db_path: Path, work: Callable[[Catalog], _T]) -> _T:
    """`work` on a connection of its own (a `Catalog` is used from one thread)."""
    catalog = Catalog(db_path)
    try:
        return work(catalog)
    finally:
        catalog.close()


def _reconcile_in_worker(db_path: Path, kind: Kind, root: Path) -> tuple[int, int]:
    return _in_worker(db_path, operator.methodcaller("reconcile", kind, root))
