"""A camera's recording segments on disk: the fMP4 files MediaMTX writes to
`<recordings>/<device>/<device>_<start>.mp4`.

Owns: reading a segment's start from its name, listing a device folder's segments in
recording order, their sizes and last write, a segment's catalogue row as it stands on disk,
checking that a path the hook names is one of them, and cutting a closed segment back to
its whole parts. Plain file work, called from
worker threads; what a recording is lives in `recordings`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable
from pathlib import Path

import structlog

from camsvc.media.catalog import FileRecord
from camsvc.media.fmp4 import trim_incomplete_tail

__all__ = [
    "last_write",
    "names_in",
    "segment_file",
    "segment_record",
    "segment_sizes",
    "segment_start",
    "segments_in",
    "trim_segment",
]

log = structlog.get_logger("camsvc.streaming.segments")

_SEGMENT = re.compile(r"_(\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6})\.mp4$")


def segment_start(filename: str) -> float | None:
    """Unix start time in a MediaMTX segment name (`camera0_2025-01-15_14-30-00-123456.mp4`)."""
    m = _SEGMENT.search(filename)
    if m is None:
        return None
    # MediaMTX writes local time (UTC when camsvc spawns it, where local is UTC anyway).
    return dt.datetime.strptime(m.group(1), "%Y-%m-%d_%H-%M-%S-%f").timestamp()


def names_in(folder: Path) -> set[str]:
    """The names of the files in `folder` (none when it does not exist yet)."""
    try:
        return {p.name for p in folder.iterdir()}
    except FileNotFoundError:
        return set()


def segments_in(folder: Path, exclude: set[str]) -> list[Path]:
    """The segments in `folder` not named in `exclude`, in recording order."""
    try:
        files = [p for p in folder.iterdir() if p.suffix == ".mp4" and p.name not in exclude]
    except FileNotFoundError:
        return []
    return sorted(files, key=lambda p: (segment_start(p.name) or 0.0, p.name))


def segment_sizes(segments: Iterable[Path]) -> dict[str, int]:
    """Each segment's size by name (one removed meanwhile is left out)."""
    out: dict[str, int] = {}
    for p in segments:
        try:
            out[p.name] = p.stat().st_size
        except FileNotFoundError:
            continue
    return out


def last_write(segments: Iterable[Path]) -> float | None:
    """When one of the segments was last written (None without a segment)."""
    times = []
    for p in segments:
        try:
            times.append(p.stat().st_mtime)
        except FileNotFoundError:
            continue
    return max(times, default=None)


def segment_record(
    segment: Path, device: str, *, created: float | None = None, duration: float | None = None
) -> FileRecord | None:
    """The catalogue row of `segment` as it is on disk now (None once it is gone); created
    at `created`, else at the start its name gives, else at its last write."""
    try:
        st = segment.stat()
    except FileNotFoundError:
        return None  # removed meanwhile (MediaMTX drops empty segments)
    if created is None:
        created = segment_start(segment.name) or st.st_mtime
    return FileRecord(
        "recording",
        segment.name,
        subdir=device,
        size=st.st_size,
        mtime=st.st_mtime,
        created=created,
        duration=round(duration, 3) if duration is not None else None,
    )


def segment_file(root: Path, device: str, segment: str) -> Path:
    """`segment` as a segment file of `device` under `root`; ValueError if it is not one."""
    file = Path(os.path.abspath(segment))
    if (
        device in ("", ".", "..")
        or "/" in device
        or file.parent != Path(os.path.abspath(root / device))
        or segment_start(file.name) is None
        or not file.name.startswith(f"{device}_")
    ):
        raise ValueError(f"{segment} is not a recording segment of {device}")
    return file


def trim_segment(segment: Path) -> None:
    """Cut a closed segment back to its whole parts, saying so when it was cut short."""
    try:
        cut = trim_incomplete_tail(segment)
    except FileNotFoundError:
        return  # removed meanwhile (MediaMTX drops empty segments)
    except OSError as exc:
        log.warning("segment_check_failed", segment=segment.name, error=str(exc))
        return
    if cut:
        log.warning("segment_cut_short", segment=segment.name, removed_bytes=cut)
