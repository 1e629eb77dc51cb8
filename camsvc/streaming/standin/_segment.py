"""The stand-in recorder's segment file: what ffmpeg writes, held until the file is named
by its first sample, then appended; a failed write (disk full) ends the writing, as MediaMTX's
recorder does."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import BinaryIO

import trio

__all__ = ["SegmentFile"]


class SegmentFile:
    """A segment file fed from the recorder's output: what arrives before the file is
    created (named by its first sample, once there is output) is held, then everything
    is appended. A failed write (disk full) ends the writing: `failed` holds the error and
    later output is dropped."""

    def __init__(self) -> None:
        self.path: FsPath | None = None
        self._file: BinaryIO | None = None
        self._pending: list[bytes] = []
        self._written = 0
        self._writing = trio.Lock()  # the copy and the creation both flush
        self.has_data = trio.Event()
        self.failed: OSError | None = None

    @property
    def pending(self) -> bool:
        """Whether output waits to be written (the file has not been created yet)."""
        return bool(self._pending)

    async def create(self, path: FsPath) -> None:
        """Create the file at `path` (and its directory); what was held follows."""

        def create() -> BinaryIO:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: what ffmpeg wrote is in the file at once, as MediaMTX writes it
            # (a buffered header would leave the file empty on disk for seconds).
            return open(path, "wb", buffering=0)  # closed by `close`

        try:
            self._file = await trio.to_thread.run_sync(create)
        except OSError as exc:
            self._fail(exc)
            return
        self.path = path
        await self.flush()

    def _fail(self, exc: OSError) -> None:
        self.failed = exc
        self._pending.clear()

    async def flush(self) -> None:
        """Write what is held (once the file exists). A chunk leaves the queue only once
        written, so a cancelled copy loses nothing: the next flush writes it, in order."""
        async with self._writing:
            while self._file is not None and self._pending:
                try:
                    await trio.to_thread.run_sync(_write_all, self._file, self._pending[0])
                except OSError as exc:
                    self._fail(exc)
                    return
                self._written += len(self._pending.pop(0))

    async def copy(self, stream: trio.abc.ReceiveStream, *, until_failed: bool = False) -> None:
        """Append what `stream` yields until it ends (or a write fails, if `until_failed`;
        otherwise what follows a failure is read and dropped)."""
        while chunk := await stream.receive_some(65536):
            if self.failed is None:
                self._pending.append(chunk)
                self.has_data.set()
                await self.flush()
            if self.failed is not None and until_failed:
                return

    async def close(self) -> FsPath | None:
        """Close the file; one that got no data is removed (None)."""
        file, path = self._file, self.path
        if file is None or path is None:
            return None
        try:
            await trio.to_thread.run_sync(file.close)
        except OSError as exc:  # the buffered tail did not fit: what was written stays
            self._fail(exc)
        if self._written:
            return path
        await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        return None


def _write_all(file: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[file.write(view) or 0 :]
