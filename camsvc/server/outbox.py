"""A connection's notification queue: bounded, drops the oldest when full (API.md §9.4)."""

from __future__ import annotations

from collections import deque

import trio

__all__ = ["Outbox"]


class Outbox:
    """Notifications waiting for one connection's writer; responses never go here."""

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

    async def get(self) -> bytes:
        """The oldest queued notification, waiting for one if needed."""
        while not self._queue:
            self._ready = trio.Event()
            await self._ready.wait()
        return self._queue.popleft()

    def __len__(self) -> int:
        return len(self._queue)
