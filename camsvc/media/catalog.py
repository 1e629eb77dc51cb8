"""The media catalogue: every snapshot and recording segment, in SQLite.

One module, one small interface (`add`, `remove`, `get`, `page`, `reconcile`, settings), so a
server database could replace it. Files live in `<root>/<subdir>/<filename>`; the catalogue
mirrors them: the service adds what it writes, and `reconcile` brings the rows in line with
the file system (at start-up and when the media folders change behind the service's back).
Filenames are unique within a kind (API.md §1.1), so (kind, filename) is the key.

The files are the truth and the catalogue only an index of them, so a damaged database is
not repaired but set aside (`<db>.corrupt-<time>`) and started afresh; a reconcile then
rebuilds the rows from the files (the settings it held go back to their defaults).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import msgspec

__all__ = ["EXTENSIONS", "Catalog", "FileRecord", "Kind", "is_busy", "is_corrupt"]

Kind = Literal["snapshot", "recording"]

EXTENSIONS: dict[Kind, frozenset[str]] = {
    "snapshot": frozenset({".jpg", ".jpeg", ".png"}),
    "recording": frozenset({".mp4", ".mkv"}),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    kind     TEXT NOT NULL,
    filename TEXT NOT NULL,
    subdir   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime    REAL NOT NULL,
    created  REAL NOT NULL,
    width    INTEGER,
    height   INTEGER,
    duration REAL,
    PRIMARY KEY (kind, filename)
);
CREATE INDEX IF NOT EXISTS files_by_time ON files (kind, mtime DESC, filename);
CREATE INDEX IF NOT EXISTS files_by_subdir ON files (kind, subdir, mtime DESC, filename);
CREATE INDEX IF NOT EXISTS files_by_created ON files (kind, created);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class FileRecord(msgspec.Struct, frozen=True):
    """One catalogued file."""

    kind: Kind
    filename: str
    subdir: str
    size: int
    mtime: float
    created: float
    width: int | None = None
    height: int | None = None
    duration: float | None = None


_COLUMNS = "kind, filename, subdir, size, mtime, created, width, height, duration"


def _record(row: tuple) -> FileRecord:
    return FileRecord(*row)


# Primary result codes (the low byte of the extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26


def _primary_code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def is_corrupt(exc: BaseException) -> bool:
    """Whether an sqlite3 error says the database file is damaged or not a database."""
    return isinstance(exc, sqlite3.DatabaseError) and _primary_code(exc) in (
        _SQLITE_CORRUPT,
        _SQLITE_NOTADB,
    )


def is_busy(exc: BaseException) -> bool:
    """Whether an sqlite3 error says another connection holds a lock (worth retrying)."""
    return isinstance(exc, sqlite3.OperationalError) and _primary_code(exc) in (
        _SQLITE_BUSY,
        _SQLITE_LOCKED,
    )


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reports_corruption(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Tell the catalogue's owner (`on_corrupt`) when a query finds the file damaged."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if is_corrupt(exc):
                args[0].on_corrupt()  # type: ignore[attr-defined]
            raise

    return wrapper


def scan(root: Path, kind: Kind) -> dict[str, FileRecord]:
    """The files of `kind` in the subdirectories of `root`, from the file system."""
    found: dict[str, FileRecord] = {}
    try:
        subdirs = [d for d in os.scandir(root) if d.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return found
    for sub in subdirs:
        try:
            entries = list(os.scandir(sub.path))
        except OSError:
            continue
        for entry in entries:
            if _catalogued(entry.name, kind) and entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                found[entry.name] = _on_disk(kind, entry.name, sub.name, st)
    return found


def scan_names(folder: Path, kind: Kind, names: Iterable[str]) -> dict[str, FileRecord]:
    """`scan` of the files `names` in one device folder only."""
    found: dict[str, FileRecord] = {}
    for name in names:
        if not _catalogued(name, kind):
            continue
        try:
            st = os.stat(folder / name, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found[name] = _on_disk(kind, name, folder.name, st)
    return found


def _catalogued(name: str, kind: Kind) -> bool:
    """Whether a file of this name may enter the catalogue (not a hidden temporary, an
    extension of its kind). Only regular files do: a symlink could point anywhere."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in EXTENSIONS[kind]


def _on_disk(kind: Kind, name: str, subdir: str, st: os.stat_result) -> FileRecord:
    return FileRecord(kind, name, subdir, st.st_size, st.st_mtime, st.st_mtime)


def _damage(path: Path) -> str | None:
    """What a fresh connection finds wrong with the file at `path` (None: sound, or absent).

    Fresh, because a connection that had the file open may answer from its page cache.
    """
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(path, timeout=5)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        verdict = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        return None if verdict == "ok" else verdict
    except sqlite3.DatabaseError as exc:
        return str(exc) if is_corrupt(exc) else None
    finally:
        db.close()


class Catalog:
    """The SQLite store (WAL mode). Use from one thread; open another for bulk work."""

    def __init__(self, path: str | os.PathLike[str], *, repair: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        #: Called when a query finds the file damaged (the library then repairs and rebuilds).
        self.on_corrupt: Callable[[], None] = lambda: None
        #: Where a damaged database was moved by `repair`, when it was.
        self.set_aside: Path | None = None
        if repair and _damage(self.path) is not None:
            self.set_aside = self._move_aside()
        self._db = self._connect()
        self._counts: dict[tuple[object, ...], int] = {}
        self._data_version = -1

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=5000")  # a reconcile in a worker may hold the lock
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        return aside

    def repair(self) -> Path | None:
        """If the file is damaged, set it aside and start an empty catalogue in its place.

        Returns where the damaged file went, or None when a fresh look finds it sound. The
        rows come back from the files with the next `reconcile`.
        """
        if _damage(self.path) is None:
            return None
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self.set_aside = self._move_aside()
        self._db = self._connect()
        self._counts.clear()
        self._data_version = -1
        return self.set_aside

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- files ------------------------------------------------------------------------

    @_reports_corruption
    def add(self, rec: FileRecord) -> None:
        """Insert or replace a file's row."""
        self._counts.clear()
        self._db.execute(
            f"INSERT OR REPLACE INTO files ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
            (rec.kind, rec.filename, rec.subdir, rec.size, rec.mtime, rec.created,
             rec.width, rec.height, rec.duration),
        )  # fmt: skip

    @_reports_corruption
    def remove(self, kind: Kind, filename: str) -> None:
        """Forget a file."""
        self._counts.clear()
        self._db.execute("DELETE FROM files WHERE kind = ? AND filename = ?", (kind, filename))

    @_reports_corruption
    def get(self, kind: Kind, filename: str) -> FileRecord | None:
        """A file's row, if catalogued."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM files WHERE kind = ? AND filename = ?", (kind, filename)
        ).fetchone()
        return _record(row) if row else None

    @_reports_corruption
    def page(
        self, kind: Kind, limit: int, offset: int, subdir: str | None = None
    ) -> tuple[list[FileRecord], int]:
        """Newest first (ties by filename), and the total before paging."""
        where, args = "kind = ?", [kind]
        if subdir is not None:
            where += " AND subdir = ?"
            args.append(subdir)
        total = self._count(where, args)
        if offset >= total:  # also keeps offsets past SQLite's 64-bit INTEGER out of the query
            return [], total
        if offset + limit <= total // 2:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM files WHERE {where} "
                "ORDER BY mtime DESC, filename ASC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        else:
            # Deep pages are near the oldest end: walk the index from there (fewer rows to skip).
            last = min(total, offset + limit)
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM files WHERE {where} "
                "ORDER BY mtime ASC, filename DESC LIMIT ? OFFSET ?",
                [*args, last - offset, total - last],
            ).fetchall()
            rows.reverse()
        return [_record(r) for r in rows], total

    def _count(self, where: str, args: list[object]) -> int:
        # COUNT(*) walks the index (milliseconds at 100k rows); totals only change on writes:
        # ours clear the cache, and data_version moves when another connection commits.
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._counts.clear()
            self._data_version = version
        key = (where, *args)
        cached = self._counts.get(key)
        if cached is None:
            cached = self._db.execute(f"SELECT COUNT(*) FROM files WHERE {where}", args).fetchone()[
                0
            ]
            self._counts[key] = cached
        return cached

    def changed(self) -> None:
        """Forget cached totals (after writes through another connection)."""
        self._counts.clear()

    @_reports_corruption
    def oldest(self, kinds: Iterable[Kind], before: float | None = None) -> list[FileRecord]:
        """Files of the given kinds, oldest first (only those created before `before`)."""
        marks = ",".join("?" for _ in kinds)
        sql = f"SELECT {_COLUMNS} FROM files WHERE kind IN ({marks})"
        args: list[object] = list(kinds)
        if before is not None:
            sql += " AND created < ?"
            args.append(before)
        return [_record(r) for r in self._db.execute(sql + " ORDER BY created ASC", args)]

    @_reports_corruption
    def total_size(self, kind: Kind) -> int:
        """Bytes of all catalogued files of a kind."""
        return self._db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE kind = ?", (kind,)
        ).fetchone()[0]

    @_reports_corruption
    def refresh(self, kind: Kind, folder: Path, names: set[str]) -> tuple[int, int]:
        """Make the rows of the files `names` in `folder` (a device folder of `kind`'s root)
        match the disk, as `reconcile` does for all; returns (added or updated, removed).

        What inotify events name costs only those files, however large the library."""
        self._counts.clear()
        on_disk = scan_names(folder, kind, names)
        gone = [
            (kind, name)
            for name in names - on_disk.keys()
            if (row := self.get(kind, name)) is not None and row.subdir == folder.name
        ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM files WHERE kind = ? AND filename = ?", gone)
            self._upsert(on_disk.values())
        return len(on_disk), len(gone)

    def _upsert(self, records: Iterable[FileRecord]) -> None:
        """Insert rows; rows that only changed keep what the service knew (dimensions,
        duration)."""
        self._db.executemany(
            f"INSERT INTO files ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (kind, filename) DO UPDATE SET "
            "subdir = excluded.subdir, size = excluded.size, mtime = excluded.mtime",
            [
                (r.kind, r.filename, r.subdir, r.size, r.mtime, r.created, None, None, None)
                for r in records
            ],
        )

    @_reports_corruption
    def reconcile(self, kind: Kind, root: Path) -> tuple[int, int]:
        """Make the rows of `kind` match the files under `root`; returns (added, removed)."""
        self._counts.clear()
        # Rows first, then the disk: a file the service adds in between is then seen on disk
        # and kept, never taken for a vanished one.
        rows = {
            r[0]: (r[1], r[2], r[3])
            for r in self._db.execute(
                "SELECT filename, subdir, size, mtime FROM files WHERE kind = ?", (kind,)
            )
        }
        on_disk = scan(root, kind)
        gone = [(kind, name) for name in rows.keys() - on_disk.keys()]
        fresh = [
            rec
            for name, rec in on_disk.items()
            if rows.get(name) != (rec.subdir, rec.size, rec.mtime)
        ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM files WHERE kind = ? AND filename = ?", gone)
            self._upsert(fresh)
        added = sum(1 for r in fresh if r.filename not in rows)
        return added, len(gone)

    # -- settings ---------------------------------------------------------------------

    @_reports_corruption
    def setting(self, key: str) -> bytes | None:
        """A stored setting (JSON bytes), if any."""
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    @_reports_corruption
    def set_setting(self, key: str, value: bytes) -> None:
        """Store a setting (JSON bytes)."""
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))
