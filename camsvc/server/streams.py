"""Stream wrappers of the WebSocket transport: replaying a request head, and direct writes."""

from __future__ import annotations

import os

import trio

__all__ = ["PrefixedStream", "WriteThroughStream"]


class PrefixedStream(trio.abc.Stream):
    """Wraps a stream; `receive_some` returns `prefix` first, then reads the stream.

    The HTTP layer reads a request's head to route it; when it is a WebSocket upgrade, the
    head is replayed to trio-websocket through this wrapper.
    """

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self.stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The replayed bytes, then whatever the wrapped stream yields."""
        if self._prefix:
            await trio.lowlevel.checkpoint()
            if max_bytes is None or max_bytes >= len(self._prefix):
                data, self._prefix = self._prefix, b""
            else:
                data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send through the wrapped stream."""
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Delegate to the wrapped stream."""
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Half-close the wrapped stream when it supports it."""
        if isinstance(self.stream, trio.abc.HalfCloseableStream):
            await self.stream.send_eof()

    async def aclose(self) -> None:
        """Close the wrapped stream."""
        await self.stream.aclose()


class WriteThroughStream(trio.abc.Stream):
    """A socket stream with one writer at a time, which a synchronous caller may also
    write to at once when nobody else is writing and the socket has room.

    Notification fan-out writes to each client from the publishing task (`try_write`, or
    `free_fd` and `wrote` around one C call for many clients): one `write(2)` per client
    instead of a task wake-up and an await each. Callers write whole WebSocket frames, so
    the bytes on the wire stay in frame order: a direct write the kernel takes only in
    part leaves its rest as a backlog that `send_all` and `flush` put on the wire before
    anything else.
    """

    # A fan-out reads `free_fd` for each of up to thousands of clients, where every object
    # it touches is a likely cache miss: it is kept up to date here rather than worked out
    # from the lock and the socket on each read.
    __slots__ = ("_backlog", "_fd", "_lock", "_writers", "free_fd", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._fd = stream.socket.fileno()
        self._lock = trio.StrictFIFOLock()
        self._writers = 0  # tasks holding or waiting for the lock
        self._backlog = b""
        # The socket's descriptor while a direct write may go now (nobody else is writing or
        # waiting to, no backlog, not closed), else -1. A caller that writes to it itself
        # (several sockets in one call) reports what the socket took with `wrote`.
        self.free_fd = self._fd

    @property
    def backlogged(self) -> bool:
        """True while part of a direct write still waits to go out."""
        return bool(self._backlog)

    def try_write(self, data: bytes) -> bool:
        """Write `data` now if no one else is writing; False when the caller must queue it.

        True means the socket took all of it, or part of it with the rest in the backlog
        (the caller then has `flush` run). A socket error also returns False: the queued
        path meets the same error and closes the connection through its usual route.
        """
        if self.free_fd < 0:
            return False
        try:
            n = os.write(self.free_fd, data)
        except OSError:
            return False
        self.wrote(data, n)
        return True

    def wrote(self, data: bytes, n: int) -> None:
        """A direct write of `data` put `n` bytes on the socket: keep the rest as backlog."""
        if n < len(data):
            self._backlog = data[n:]
            self.free_fd = -1

    async def flush(self) -> None:
        """Send the backlog of a partial direct write, if any."""
        await self.send_all(b"")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send after the backlog, one writer at a time."""
        self._claim()
        try:
            async with self._lock:
                await self._send_backlog()
                await self.stream.send_all(data)
        finally:
            self._release()

    def _claim(self) -> None:
        self._writers += 1
        self.free_fd = -1

    def _release(self) -> None:
        self._writers -= 1
        if not self._writers and not self._backlog:
            self.free_fd = self._fd

    async def _send_backlog(self) -> None:
        if self._backlog:
            await self.stream.send_all(self._backlog)
            self._backlog = b""

    async def wait_send_all_might_not_block(self) -> None:
        """Delegate to the wrapped stream."""
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Read from the wrapped stream."""
        return await self.stream.receive_some(max_bytes)

    async def send_eof(self) -> None:
        """Half-close the wrapped stream."""
        await self.stream.send_eof()

    async def aclose(self) -> None:
        """Close the wrapped stream; no direct write goes to its descriptor from now on (the
        number may soon belong to another connection)."""
        self._fd = self.free_fd = -1
        await self.stream.aclose()
