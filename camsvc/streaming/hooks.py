"""camsvc's control socket: where MediaMTX's hook commands (`camsvc hook ...`) call in.

Owns: the Unix socket (created at start with mode 0660, a stale one from a crashed run
replaced, removed at stop), one task per hook connection, and what each request does:
`on_demand` holds an `on_demand` use of the camera's publisher for as long as the
connection stays open; `segment_complete` hands a finished segment to the recordings.
The wire format is camsvc/streaming/hook_protocol.py's. Must not touch: MediaMTX's API,
the encoder (it asks `Publishers`), files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket as stdsocket
import stat
from typing import Final

import msgspec
import structlog
import trio

from camsvc.cameras.registry import CameraRegistry
from camsvc.streaming.hook_protocol import (
    MAX_LINE,
    OnDemand,
    Reply,
    SegmentComplete,
    decode_request,
    encode,
)
from camsvc.streaming.paths import MANAGED_NAME
from camsvc.streaming.publisher import Publishers
from camsvc.streaming.recordings import RecordingService

__all__ = ["SOCKET_MODE", "HookServer"]

log = structlog.get_logger("camsvc.streaming.hooks")

# Owner and group: MediaMTX runs as camsvc's user, or in its group when installed apart.
SOCKET_MODE: Final = 0o660
# A hook that connected must send its request this soon.
REQUEST_TIMEOUT_S: Final = 5.0


class HookServer:
    """Serves the control socket at `path` until cancelled."""

    def __init__(
        self,
        path: str,
        cameras: CameraRegistry,
        publishers: Publishers,
        recordings: RecordingService,
    ) -> None:
        self.path = path
        self.cameras = cameras
        self.publishers = publishers
        self.recordings = recordings
        self.listening = False
        self.on_demand_holds = 0  # open runOnDemand connections

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket and serve hooks; the socket file is removed when cancelled.

        A socket that cannot be bound is logged and the service runs on without it: hooks
        then fail (MediaMTX logs them), on-demand readers wait for an API start, and
        recordings fall back to watching their files.
        """
        try:
            sock = await _bind(self.path)
        except OSError as exc:
            log.error("control_socket_failed", path=self.path, error=str(exc))
            task_status.started()
            return
        ident = os.stat(self.path).st_ino
        self.listening = True
        log.info("control_socket_listening", path=self.path)
        try:
            async with trio.open_nursery() as nursery:
                listener = trio.SocketListener(sock)
                task_status.started()
                await trio.serve_listeners(self._serve, [listener], handler_nursery=nursery)
        finally:
            self.listening = False
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == ident:  # not a successor's socket
                    os.unlink(self.path)
            sock.close()

    async def _serve(self, stream: trio.SocketStream) -> None:
        structlog.contextvars.clear_contextvars()
        async with stream:
            try:
                with trio.fail_after(REQUEST_TIMEOUT_S):
                    line = await _read_line(stream)
                request = decode_request(line)
            except (trio.TooSlowError, msgspec.MsgspecError, ValueError) as exc:
                log.warning("hook_bad_request", error=str(exc))
                await _send(stream, Reply(False, f"bad request: {exc}"))
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if isinstance(request, OnDemand):
                await self._on_demand(stream, request)
            else:
                await self._segment_complete(stream, request)

    async def _on_demand(self, stream: trio.SocketStream, request: OnDemand) -> None:
        device = request.path
        entry = self.cameras.get(device)
        if MANAGED_NAME.match(device) is None or entry is None or entry.status != "CONNECTED":
            log.warning("on_demand_refused", device=device)
            await _send(stream, Reply(False, f"no connected camera {device}"))
            return
        publisher = self.publishers.acquire(device, "on_demand")
        self.on_demand_holds += 1
        log.info("on_demand_start", device=device)
        try:
            await _send(stream, Reply(True))
            async with trio.open_nursery() as nursery:

                async def until(event: trio.Event) -> None:
                    await event.wait()
                    nursery.cancel_scope.cancel()

                # MediaMTX stops the command (SIGINT) when the path has had no reader for
                # runOnDemandCloseAfter; its end closes the connection. A publisher that
                # ended by itself (camera gone) ends the command too: nothing is held.
                nursery.start_soon(until, publisher.stopped)
                await _wait_closed(stream)
                nursery.cancel_scope.cancel()
        finally:
            self.on_demand_holds -= 1
            keeps = self.publishers.release(device, "on_demand", publisher=publisher)
            log.info("on_demand_end", device=device, publisher_continues=keeps)

    async def _segment_complete(self, stream: trio.SocketStream, request: SegmentComplete) -> None:
        try:
            await self.recordings.segment_complete(request.path, request.segment, request.duration)
        except ValueError as exc:
            log.warning("segment_complete_refused", device=request.path, error=str(exc))
            await _send(stream, Reply(False, str(exc)))
            return
        await _send(stream, Reply(True))


async def _bind(path: str) -> trio.socket.SocketType:
    """A listening Unix socket at `path`; a stale socket file (nobody listening) is replaced."""
    await trio.to_thread.run_sync(_clear_stale, path)
    sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        await sock.bind(path)
        os.chmod(path, SOCKET_MODE)
        sock.listen(16)
    except BaseException:
        sock.close()
        raise
    return sock


def _clear_stale(path: str) -> None:
    """Remove a socket file left by a camsvc that died; refuse one that still answers."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: left behind by a crash
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another process serves {path}")


async def _read_line(stream: trio.SocketStream) -> bytes:
    buf = b""
    while b"\n" not in buf:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise ValueError("connection closed before a request")
        buf += chunk
        if len(buf) > MAX_LINE:
            raise ValueError("request too long")
    return buf.split(b"\n", 1)[0]


async def _send(stream: trio.SocketStream, reply: Reply) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(encode(reply))


async def _wait_closed(stream: trio.SocketStream) -> None:
    """Return when the peer closes its end (anything it sends meanwhile is ignored)."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while await stream.receive_some(4096):
            pass
