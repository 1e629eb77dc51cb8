"""A connection's notification queue: bounded, drops the oldest when full (API.md §9.4)."""

from __future__ import annotations

from collections import deque

import trio

__all__ = ["Outbox"]


class Outbox:
    """Notifications waiting for one connection's writer; responses never go here."""

    __slots__ = ("_limit", "_queue", "_ready", "dropped")

    def __init__(self, limit: int) -> None:
        self._queue: deque[bytes] = deque()
        self._limit = limit
        self._ready = trio.Event()
        self.dropped = 0

    def push(self, message: bytes) -> bool:
        """Queue a notification; returns False when an older one had to be dropped for it."""
        kept = True
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
            kept = False
        self._queue.append(message)
        self._ready.set()
        return kept

    def wake(self) -> None:
        """Wake the writer with nothing queued (it has other bytes to flush)."""
        self._ready.set()

    async def wait(self) -> None:
        """Return once something is queued or `wake` was called since the last wait."""
        if not self._queue:
            await self._ready.wait()
        self._ready = trio.Event()

    def pop(self) -> bytes | None:
        """The oldest queued notification, or None."""
        return self._queue.popleft() if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)
