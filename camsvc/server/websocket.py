"""WebSocket clients: the upgrade checks, then one reader, one writer and a keepalive each.

The reader hands each text message to the dispatcher. Synchronous methods are answered
inline; others run as tasks in the connection's handler nursery, at most
`max_concurrent_requests` at once (then the reader waits). Responses are framed here and
sent directly (bounded by `write_timeout`); every writer takes the stream's lock in turn,
so a notification raised while a response is being written follows it. A notification is
written to the socket at once when nothing else is being written to that client and its
socket has room; otherwise it waits in the connection's `Outbox` for the connection's
writer task. An event for many clients (`ClientConnection.fan_out`, the bus's fan-out) is
written to every free socket in one C call (`camsvc.server.fanout`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import math
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any

import structlog
import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection

from camsvc.auth.session import Authenticator
from camsvc.config import ServerConfig
from camsvc.events import EventBus, Sink
from camsvc.rpc.connection import RpcConnection
from camsvc.rpc.dispatch import Dispatcher
from camsvc.rpc.ratelimit import TokenBucket
from camsvc.server.fanout import send_each
from camsvc.server.http import HttpRequest, error_response
from camsvc.server.outbox import Outbox
from camsvc.server.streams import PrefixedStream, WriteThroughStream

__all__ = ["ClientConnection", "ConnectionTable", "MessageDeadlineStream", "text_frame"]

log = structlog.get_logger("camsvc.ws")

CLOSE_NORMAL = 1000
CLOSE_SHUTDOWN = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_SERVER_ERROR = 1011
# How long to wait for the close handshake of a peer already judged dead (pong timeout).
DEAD_PEER_CLOSE_WAIT_S = 1.0


class ClientConnection:
    """One open WebSocket client."""

    # A fan-out reads several of these for each of up to thousands of clients, where every
    # object and dict it touches is a likely cache miss.
    __slots__ = (
        "_cfg",
        "_close_code",
        "_direct",
        "_dispatcher",
        "_on_drop",
        "_read_scope",
        "_slots",
        "_writer_busy",
        "outbox",
        "rpc",
        "ws",
    )

    def __init__(
        self,
        ws: WebSocketConnection,
        rpc: RpcConnection,
        dispatcher: Dispatcher,
        cfg: ServerConfig,
        on_drop: Callable[[], None] = lambda: None,
        direct: WriteThroughStream | None = None,
    ) -> None:
        self.ws = ws
        self._direct = direct
        self._writer_busy = False
        self.rpc = rpc
        self._dispatcher = dispatcher
        self._cfg = cfg
        self._on_drop = on_drop
        self.outbox = Outbox(cfg.send_queue_size)
        self._slots = trio.Semaphore(cfg.max_concurrent_requests)
        self._read_scope = trio.CancelScope()
        self._close_code = CLOSE_NORMAL

    @property
    def authenticated(self) -> bool:
        """True while the connection has a session (only those get notifications)."""
        return self.rpc.session is not None

    @property
    def dropped(self) -> int:
        """Notifications dropped because this client read too slowly."""
        return self.outbox.dropped

    def notify(self, message: bytes) -> None:
        """Send a notification now if the socket is free, else queue it (dropping the oldest
        queued when full)."""
        if not self._write_now(_fanout_frame(message)):
            self._queue(message)

    def notify_many(self, messages: Sequence[bytes]) -> None:
        """`notify` for several, in order, as one write when the socket is free."""
        if not self._write_now(b"".join(map(_fanout_frame, messages))):
            self._queue_all(messages)

    @staticmethod
    def fan_out(sinks: Sequence[Sink], messages: Sequence[bytes]) -> None:
        """The same notifications to many clients, as the bus delivers an event.

        Every client whose socket is free now gets them as one write, all of those writes
        in one C call (`camsvc.server.fanout`); the others queue them. Each sink appears
        once (the bus's recipients are its subscriptions).
        """
        frames = b"".join(map(_fanout_frame, messages))
        ready: list[ClientConnection] = []
        fds: list[int] = []
        for sink in sinks:
            if not isinstance(sink, ClientConnection):
                sink.notify_many(messages)
            elif (fd := sink._free_fd()) >= 0:
                ready.append(sink)
                fds.append(fd)
            else:
                sink._queue_all(messages)
        for i, result in send_each(fds, frames):
            ready[i]._sent_in_part(frames, result, messages)

    def _free_fd(self) -> int:
        """The socket a notification may be written to at once, or -1 when it must queue:
        something else is due on it first (the writer task and its queue; a response, which
        holds the stream's lock and so its `free_fd`), or the connection is closing."""
        direct = self._direct
        if direct is None or self._writer_busy or self.outbox or self.ws.closed is not None:
            return -1
        return direct.free_fd

    def _write_now(self, frames: bytes) -> bool:
        direct = self._direct
        if self._free_fd() < 0 or direct is None or not direct.try_write(frames):
            return False
        if direct.backlogged:
            self.outbox.wake()
        return True

    def _sent_in_part(self, frames: bytes, result: int, messages: Sequence[bytes]) -> None:
        """A fan-out write that the socket did not take whole: `result` bytes, or -errno."""
        if result < 0:
            # Full (EAGAIN) or failed: the queued path waits for room, or meets the same
            # error and closes the connection through its usual route.
            self._queue_all(messages)
        else:
            assert self._direct is not None  # only clients with a direct stream are sent to
            self._direct.wrote(frames, result)
            self.outbox.wake()

    def _queue_all(self, messages: Sequence[bytes]) -> None:
        for message in messages:
            self._queue(message)

    def _queue(self, message: bytes) -> None:
        if not self.outbox.push(message):
            self._on_drop()
            log.info("notification_dropped", conn=self.rpc.conn_id, dropped=self.outbox.dropped)

    def begin_shutdown(self) -> None:
        """Stop reading; in-flight requests get `shutdown_timeout`, then the close is 1001."""
        self._close_code = CLOSE_SHUTDOWN
        self._read_scope.cancel()

    def message_timed_out(self) -> None:
        """A started message was not completed within `read_timeout`: close with 1008."""
        log.info("message_timeout", conn=self.rpc.conn_id, timeout_s=self._cfg.read_timeout)
        self._close_code = CLOSE_POLICY
        self._read_scope.cancel()

    async def serve(self) -> None:
        """Run the connection until the client leaves, misbehaves, or the service stops."""
        async with trio.open_nursery() as background:
            background.start_soon(self._keepalive)
            background.start_soon(self._write_notifications)
            async with trio.open_nursery() as handlers:
                with self._read_scope:
                    await self._read_loop(handlers)
                # In-flight requests may finish, within bounds, before the socket closes.
                handlers.cancel_scope.deadline = trio.current_time() + self._cfg.shutdown_timeout
            if self._close_code == CLOSE_SHUTDOWN:
                await self._flush_notifications()
            # A peer that stopped answering will not complete the close handshake either.
            wait = DEAD_PEER_CLOSE_WAIT_S if self._close_code == CLOSE_SERVER_ERROR else None
            with trio.move_on_after(wait or self._cfg.write_timeout) as cs:
                cs.shield = True
                await self.ws.aclose(self._close_code)
            if cs.cancelled_caught:
                await self._abort()
            background.cancel_scope.cancel()

    async def _read_loop(self, handlers: trio.Nursery) -> None:
        dispatch = self._dispatcher.handle
        rpc = self.rpc
        try:
            while True:
                message = await self.ws.get_message()
                if isinstance(message, bytes):
                    self._close_code = CLOSE_UNSUPPORTED
                    return
                reply = dispatch(rpc, message)
                if inspect.iscoroutine(reply):
                    await self._slots.acquire()
                    handlers.start_soon(self._run_handler, reply)
                elif reply is not None:
                    await self._send(reply)
                if rpc.close_code is not None:
                    self._close_code = rpc.close_code
                    return
        except ConnectionClosed:
            return

    async def _run_handler(self, pending: Coroutine[Any, Any, bytes | None]) -> None:
        try:
            reply = await pending
            if reply is not None:
                await self._send(reply)
            if self.rpc.close_code is not None:
                self._close_code = self.rpc.close_code
                self._read_scope.cancel()
        except ConnectionClosed:
            self._read_scope.cancel()
        finally:
            self._slots.release()

    async def _send(self, data: bytes) -> None:
        """Send a response or a queued notification as one text frame.

        Either way the stream's FIFO lock is taken (or queued for) before the first yield,
        so what is raised later goes out later: in particular, a notification raised while
        a response is being written follows it. Going through trio-websocket would yield
        once, at its own lock, before reaching this one.
        """
        if self._direct is None:
            await self._bounded_write(self.ws.send_message(data.decode()))
        elif self.ws.closed is not None:
            raise ConnectionClosed(self.ws.closed)
        else:
            await self._bounded_write(self._direct.send_all(text_frame(data)))

    async def _bounded_write(self, write: Awaitable[None]) -> None:
        with trio.move_on_after(self._cfg.write_timeout) as cs:
            try:
                await write
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise ConnectionClosed(self.ws.closed) from None
        if cs.cancelled_caught:
            log.warning("write_timeout", conn=self.rpc.conn_id)
            self._close_code = CLOSE_SERVER_ERROR
            # A frame half-written cannot be completed: drop the TCP connection.
            await self._abort()
            raise ConnectionClosed(None)

    async def _abort(self) -> None:
        stream = self.ws._stream  # trio-websocket has no public abort
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)

    async def _flush_notifications(self) -> None:
        """Send what is queued (the `system.shutdown` event) before the close frame."""
        # A peer already gone needs no flush: the close that follows handles it.
        with trio.move_on_after(self._cfg.write_timeout), contextlib.suppress(ConnectionClosed):
            await self._drain()

    async def _write_notifications(self) -> None:
        try:
            while True:
                await self.outbox.wait()
                await self._drain()
        except ConnectionClosed:
            self._read_scope.cancel()

    async def _drain(self) -> None:
        """Send the rest of a partial direct write, then every queued notification.

        While this runs, `notify` queues instead of writing, so notifications keep their order.
        """
        self._writer_busy = True
        try:
            if self._direct is not None and self._direct.backlogged:
                await self._bounded_write(self._direct.flush())
            while (message := self.outbox.pop()) is not None:
                await self._send(message)
        finally:
            self._writer_busy = False

    async def _keepalive(self) -> None:
        counter = itertools.count()
        try:
            while True:
                await trio.sleep(self._cfg.ping_interval)
                with trio.move_on_after(self._cfg.pong_wait) as cs:
                    await self.ws.ping(next(counter).to_bytes(8, "big"))
                if cs.cancelled_caught:
                    log.info("pong_timeout", conn=self.rpc.conn_id)
                    self._close_code = CLOSE_SERVER_ERROR
                    self._read_scope.cancel()
                    return
        except ConnectionClosed:
            self._read_scope.cancel()


class ConnectionTable:
    """All open WebSocket clients: the connection cap, attaching them to the bus, shutdown."""

    def __init__(
        self,
        cfg: ServerConfig,
        dispatcher: Dispatcher,
        authenticator: Authenticator,
        bus: EventBus,
        rate_limit_rps: float,
        rate_limit_burst: int,
        allowed_origins: list[str],
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        self._cfg = cfg
        self._bus = bus
        self._on_drop = on_drop
        self._dispatcher = dispatcher
        self._auth = authenticator
        self._rps = rate_limit_rps
        self._burst = rate_limit_burst
        self._origins = {o.lower().rstrip("/") for o in allowed_origins}
        self._open: dict[str, ClientConnection] = {}
        self._ids = itertools.count(1)
        self._pending = 0
        self._emptied = trio.Event()
        self.accepting = True
        self.total_accepted = 0

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[ClientConnection]:
        return iter(list(self._open.values()))

    def origin_allowed(self, origin: str | None) -> bool:
        """API.md §2.2: absent or listed (or `*`)."""
        if origin is None or "*" in self._origins:
            return True
        return origin.lower().rstrip("/") in self._origins

    async def handle_upgrade(self, stream: trio.abc.Stream, head: bytes, req: HttpRequest) -> None:
        """Check, accept and serve a WebSocket upgrade (the HTTP layer already read `head`)."""
        async with trio.open_nursery() as nursery:
            direct = WriteThroughStream(stream) if isinstance(stream, trio.SocketStream) else None
            framing = MessageDeadlineStream(direct or stream, head, self._cfg.read_timeout)
            request = await trio_websocket.wrap_server_stream(
                nursery,
                framing,
                max_message_size=self._cfg.max_message_size,
                receive_buffer_size=self._cfg.read_buffer_size,
            )
            reject = None
            if not self.accepting:
                reject = error_response(503, "Service shutting down")
            elif not self.origin_allowed(req.headers.get("origin")):
                reject = error_response(403, "Origin not allowed")
            elif len(self._open) + self._pending >= self._cfg.max_connections:
                reject = error_response(503, "Maximum connections reached")
            if reject is not None:
                headers = [(k.encode(), v.encode()) for k, v in reject.headers]
                await request.reject(reject.status, extra_headers=headers, body=reject.body)
                nursery.cancel_scope.cancel()
                return
            self._pending += 1
            try:
                ws = await request.accept()
            finally:
                self._pending -= 1
            _set_send_buffer(stream, self._cfg.write_buffer_size)
            conn_id = f"c{next(self._ids)}"
            rpc = RpcConnection(
                conn_id,
                TokenBucket(self._rps, self._burst),
                session=self._auth.anonymous(),
                host=req.headers.get("host", ""),
            )
            client = ClientConnection(ws, rpc, self._dispatcher, self._cfg, self._on_drop, direct)
            framing.watch(ws, client.message_timed_out)
            self._open[conn_id] = client
            self._bus.attach(conn_id, client)
            rpc.on_auth_change = self._bus.recipients_changed
            self.total_accepted += 1
            with structlog.contextvars.bound_contextvars(conn=conn_id):
                log.debug("ws_open")
                try:
                    await client.serve()
                except Exception:
                    # A bug reached the connection's boundary: it ends this connection only.
                    log.exception("ws_connection_crashed")
                finally:
                    del self._open[conn_id]
                    self._bus.detach(conn_id)
                    if not self._open:
                        self._emptied.set()
                    log.debug("ws_closed")
            nursery.cancel_scope.cancel()

    def begin_shutdown(self) -> None:
        """Refuse new upgrades and ask every client to finish and close with 1001."""
        self.accepting = False
        for client in self._open.values():
            client.begin_shutdown()

    async def wait_empty(self) -> None:
        """Return once every client connection has closed."""
        while self._open:
            self._emptied = trio.Event()
            await self._emptied.wait()


class MessageDeadlineStream(PrefixedStream):
    """The stream trio-websocket reads, bounding how long a started message may take to
    complete (`read_timeout`, API.md §2): a client that sends a first fragment and never the
    last holds no slot and no buffer for longer.

    trio-websocket assembles fragments out of sight; the list of parts it keeps for the
    message being received is the only sign of one begun, and it is replaced by a new list
    when a message completes. Its reader calls `receive_some` only after handling every
    event of the previous read, so the list seen here is current.
    """

    def __init__(self, stream: trio.abc.Stream, prefix: bytes, limit_s: float) -> None:
        super().__init__(stream, prefix)
        self._limit_s = limit_s
        self._ws: WebSocketConnection | None = None
        self._on_expired: Callable[[], None] = lambda: None
        self._parts: object = None
        self._deadline = math.inf

    def watch(self, ws: WebSocketConnection, on_expired: Callable[[], None]) -> None:
        """Start timing the messages of `ws`; `on_expired` is called once per late message."""
        self._ws = ws
        self._on_expired = on_expired

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Read; when a message is under way, at most until its deadline (then tell)."""
        parts = self._ws._message_parts if self._ws is not None else None
        if not parts:
            self._parts, self._deadline = None, math.inf
        elif parts is not self._parts:
            self._parts, self._deadline = parts, trio.current_time() + self._limit_s
        with trio.move_on_at(self._deadline):
            return await super().receive_some(max_bytes)
        self._deadline = math.inf  # told once; reading goes on for the close handshake
        self._on_expired()
        return await super().receive_some(max_bytes)


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (RFC 6455 §5.2) as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


# A notification goes to every client as the same bytes object (the bus encodes it once):
# frame it once too. bytes cache their hash, so a hit costs a lookup, not a copy. A batch
# (`EventBus.batch`) holds a few at once.
_fanout_frame = functools.lru_cache(maxsize=8)(text_frame)


def _set_send_buffer(stream: trio.abc.Stream, size: int) -> None:
    if isinstance(stream, trio.SocketStream):
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
