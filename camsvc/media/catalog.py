"""The media catalogue: every snapshot and recording segment, in SQLite.

One module, one small interface (`add`, `remove`, `get`, `page`, `reconcile`, settings), so a
server database could replace it. Files live in `<root>/<subdir>/<filename>`; the catalogue
mirrors them: the service adds what it writes, and `reconcile` brings the rows in line with
the file system (at start-up and when the media folders change behind the service's back).
Filenames are unique within a kind (API.md §1.1), so (kind, filename) is the key.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import msgspec

__all__ = ["EXTENSIONS", "Catalog", "FileRecord", "Kind"]

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


def scan(root: Path, kind: Kind) -> dict[str, FileRecord]:
    """The files of `kind` in the subdirectories of `root`, from the file system."""
    found: dict[str, FileRecord] = {}
    exts = EXTENSIONS[kind]
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
            name = entry.name
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in exts:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue  # symlinks never enter the catalogue (they could point anywhere)
            st = entry.stat(follow_symlinks=False)
            found[name] = FileRecord(kind, name, sub.name, st.st_size, st.st_mtime, st.st_mtime)
    return found


class Catalog:
    """The SQLite store (WAL mode). Use from one thread; open another for bulk work."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")  # a reconcile in a worker may hold the lock
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._counts: dict[tuple[object, ...], int] = {}
        self._data_version = -1

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- files ------------------------------------------------------------------------

    def add(self, rec: FileRecord) -> None:
        """Insert or replace a file's row."""
        self._counts.clear()
        self._db.execute(
            f"INSERT OR REPLACE INTO files ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
            (rec.kind, rec.filename, rec.subdir, rec.size, rec.mtime, rec.created,
             rec.width, rec.height, rec.duration),
        )  # fmt: skip

    def remove(self, kind: Kind, filename: str) -> None:
        """Forget a file."""
        self._counts.clear()
        self._db.execute("DELETE FROM files WHERE kind = ? AND filename = ?", (kind, filename))

    def get(self, kind: Kind, filename: str) -> FileRecord | None:
        """A file's row, if catalogued."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM files WHERE kind = ? AND filename = ?", (kind, filename)
        ).fetchone()
        return _record(row) if row else None

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

    def oldest(self, kinds: Iterable[Kind], before: float | None = None) -> list[FileRecord]:
        """Files of the given kinds, oldest first (only those created before `before`)."""
        marks = ",".join("?" for _ in kinds)
        sql = f"SELECT {_COLUMNS} FROM files WHERE kind IN ({marks})"
        args: list[object] = list(kinds)
        if before is not None:
            sql += " AND created < ?"
            args.append(before)
        return [_record(r) for r in self._db.execute(sql + " ORDER BY created ASC", args)]

    def total_size(self, kind: Kind) -> int:
        """Bytes of all catalogued files of a kind."""
        return self._db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE kind = ?", (kind,)
        ).fetchone()[0]

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
            # Rows that only changed keep what the service knew (dimensions, duration).
            self._db.executemany(
                f"INSERT INTO files ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (kind, filename) DO UPDATE SET "
                "subdir = excluded.subdir, size = excluded.size, mtime = excluded.mtime",
                [
                    (r.kind, r.filename, r.subdir, r.size, r.mtime, r.created, None, None, None)
                    for r in fresh
                ],
            )
        added = sum(1 for r in fresh if r.filename not in rows)
        return added, len(gone)

    # -- settings ---------------------------------------------------------------------

    def setting(self, key: str) -> bytes | None:
        """A stored setting (JSON bytes), if any."""
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def set_setting(self, key: str, value: bytes) -> None:
        """Store a setting (JSON bytes)."""
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))
