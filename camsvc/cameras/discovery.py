"""Which `videoN` nodes exist: an initial scan, inotify for changes, a slow poll as a safety net.

Knows nothing about what a node is; the registry probes them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import inotify_simple
import structlog
import trio

__all__ = ["NodeWatcher", "scan_nodes"]

log = structlog.get_logger("camsvc.cameras")

_NODE_RE = re.compile(r"^video(\d+)$")
_MASK = (
    inotify_simple.flags.CREATE
    | inotify_simple.flags.DELETE
    | inotify_simple.flags.ATTRIB
    | inotify_simple.flags.MOVED_FROM
    | inotify_simple.flags.MOVED_TO
)


def node_number(name: str, lo: int, hi: int) -> int | None:
    """N for a `videoN` name within [lo, hi], else None."""
    m = _NODE_RE.match(name)
    if not m or (len(m.group(1)) > 1 and m.group(1).startswith("0")):
        return None
    n = int(m.group(1))
    return n if lo <= n <= hi else None


def scan_nodes(directory: Path, lo: int, hi: int) -> set[int]:
    """The numbers of `videoN` nodes present in `directory` within [lo, hi]."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return set()
    return {n for name in names if (n := node_number(name, lo, hi)) is not None}


Changed = Callable[[set[int]], Awaitable[None]]


class NodeWatcher:
    """Calls `on_change(present)` with the full set of nodes whenever it may have changed."""

    def __init__(self, directory: Path, lo: int, hi: int, poll_interval_s: float) -> None:
        self.directory = directory
        self.lo = lo
        self.hi = hi
        self.poll_interval_s = poll_interval_s

    async def run(
        self, on_change: Changed, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Scan once, then watch until cancelled."""
        inotify = inotify_simple.INotify(nonblocking=True)
        try:
            try:
                inotify.add_watch(self.directory, _MASK)
            except OSError as exc:
                # Without inotify the poll still finds changes, only later.
                log.warning("inotify_unavailable", dir=str(self.directory), error=exc.strerror)
            await on_change(scan_nodes(self.directory, self.lo, self.hi))
            task_status.started()
            fd = inotify.fileno()
            while True:
                with trio.move_on_after(self.poll_interval_s):
                    await trio.lowlevel.wait_readable(fd)
                    # Drain the burst: one rescan covers every event read here.
                    inotify.read(timeout=0)
                await on_change(scan_nodes(self.directory, self.lo, self.hi))
        finally:
            trio.lowlevel.notify_closing(inotify.fileno())
            inotify.close()
