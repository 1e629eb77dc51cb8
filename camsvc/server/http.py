"""Plain HTTP/1.1 on the listeners, with h11: routing, keep-alive, and the WebSocket hand-off.

One task per TCP connection reads request heads (bounded by `read_timeout`), answers routes,
and when a request asks to upgrade on the WebSocket path, hands the connection, with the
bytes already read, to the WebSocket side. A response body is either bytes in memory or a
slice of a file, which is streamed in `FILE_CHUNK_BYTES` chunks and never held whole. Each
write to the socket is bounded by `write_timeout`: a client that stops reading a download
is dropped, and its task and file go with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import h11
import msgspec
import structlog
import trio

__all__ = [
    "FileBody",
    "HttpRequest",
    "HttpResponse",
    "Route",
    "Router",
    "error_response",
    "json_response",
    "serve_http_connection",
]

log = structlog.get_logger("camsvc.http")

MAX_HEAD_BYTES = 16384
#: Bytes read from a file and written to the socket at a time when streaming a FileBody.
FILE_CHUNK_BYTES: Final = 256 * 1024


class _WriteTimeout(Exception):
    """A write to the client did not finish within `write_timeout` (it stopped reading)."""


class _BoundedWrites(trio.abc.Stream):
    """The connection's stream with every `send_all` bounded by `write_timeout`.

    Only the HTTP side writes through it; an upgraded connection gets the raw stream, since
    the WebSocket side bounds its own writes.
    """

    def __init__(self, stream: trio.abc.Stream, write_timeout_s: float) -> None:
        self.stream = stream
        self._timeout_s = write_timeout_s

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send, or raise _WriteTimeout when the client takes no more within the bound."""
        with trio.move_on_after(self._timeout_s) as cs:
            await self.stream.send_all(data)
        if cs.cancelled_caught:
            raise _WriteTimeout

    async def wait_send_all_might_not_block(self) -> None:
        """Delegate to the wrapped stream."""
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Read from the wrapped stream."""
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        """Close the wrapped stream."""
        await self.stream.aclose()


class HttpRequest(msgspec.Struct, frozen=True):
    """A request head as routes see it."""

    method: str
    target: str
    path: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "


class FileBody(msgspec.Struct, frozen=True):
    """`length` bytes of the file at `path` from `offset`: a body streamed from disk."""

    path: Path
    offset: int
    length: int


class HttpResponse(msgspec.Struct):
    """A response; the body is `file` when set, else `body`. Omitted on the wire for HEAD.

    `Content-Length` is added by the sender (`file.length` or `len(body)`), except on 304.
    """

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list)
    file: FileBody | None = None


_json = msgspec.json.Encoder()


def json_response(
    status: int, body: Any, headers: list[tuple[str, str]] | None = None
) -> HttpResponse:
    """A JSON response with the given status."""
    return HttpResponse(
        status,
        _json.encode(body),
        [("Content-Type", "application/json"), *(headers or [])],
    )


def error_response(
    status: int, text: str, headers: list[tuple[str, str]] | None = None
) -> HttpResponse:
    """The HTTP error body of API.md §2.1."""
    return json_response(status, {"error": text, "status": status}, headers)


Route = Callable[[HttpRequest], Awaitable[HttpResponse]]
UpgradeHandler = Callable[[trio.abc.Stream, bytes, HttpRequest], Awaitable[None]]


class Router:
    """Exact paths and path prefixes to route handlers; all routes take GET and HEAD."""

    def __init__(self) -> None:
        self._exact: dict[str, Route] = {}
        self._prefix: list[tuple[str, Route]] = []

    def add(self, path: str, route: Route) -> None:
        """Route `path` exactly."""
        self._exact[path] = route

    def add_prefix(self, prefix: str, route: Route) -> None:
        """Route every path under `prefix`."""
        self._prefix.append((prefix, route))

    def find(self, path: str) -> Route | None:
        """The route for `path`, if any."""
        route = self._exact.get(path)
        if route is None:
            for prefix, candidate in self._prefix:
                if path.startswith(prefix):
                    return candidate
        return route


def _is_upgrade(req: HttpRequest) -> bool:
    return (
        "websocket" in req.headers.get("upgrade", "").lower()
        and "upgrade" in req.headers.get("connection", "").lower()
    )


async def serve_http_connection(
    stream: trio.abc.Stream,
    router: Router,
    *,
    read_timeout_s: float,
    write_timeout_s: float = 10.0,
    receive_size: int = 65536,
    ws_path: str | None = None,
    on_upgrade: UpgradeHandler | None = None,
) -> None:
    """Serve one TCP connection until it closes, times out, or is upgraded."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    handed_off = False
    raw_stream, stream = stream, _BoundedWrites(stream, write_timeout_s)
    try:
        while True:
            raw = bytearray(conn.trailing_data[0])
            event: Any = None
            with trio.move_on_after(read_timeout_s):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(receive_size)
                        raw += data
                        conn.receive_data(data)
                        continue
                    break
            if event is None or event is h11.NEED_DATA:
                if conn.our_state is h11.SEND_RESPONSE or raw:
                    await _send_simple(stream, conn, error_response(408, "Request Timeout"))
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            req = _request_of(event)
            if (
                on_upgrade is not None
                and req.path == ws_path
                and req.method == "GET"
                and _is_upgrade(req)
            ):
                handed_off = True
                await on_upgrade(raw_stream, bytes(raw), req)
                return
            response = await _route(router, req, ws_path)
            keep = await _send_response(stream, conn, req, response)
            if not keep:
                return
            # Drain any request body (routes take none) and start the next cycle.
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    with trio.move_on_after(read_timeout_s) as cs:
                        data = await stream.receive_some(receive_size)
                        conn.receive_data(data)
                    if cs.cancelled_caught:
                        return
                    continue
                if isinstance(ev, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            await _send_simple(stream, conn, error_response(status, "Bad Request"))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except _WriteTimeout:
        log.info("http_write_timeout", timeout_s=write_timeout_s)
        # Unsent bytes would keep a graceful close waiting on the same silent client.
        await trio.aclose_forcefully(raw_stream)
    except Exception:
        # A bug reached the connection's boundary: it ends this connection only.
        log.exception("http_connection_crashed")
    finally:
        if not handed_off:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await raw_stream.aclose()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _request_of(event: h11.Request) -> HttpRequest:
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    target = event.target.decode("latin-1")
    path = target.split("?", 1)[0]
    return HttpRequest(event.method.decode("ascii"), target, path, headers)


async def _route(router: Router, req: HttpRequest, ws_path: str | None) -> HttpResponse:
    route = router.find(req.path)
    if route is None:
        if req.path == ws_path:
            return error_response(426, "Upgrade Required", [("Upgrade", "websocket")])
        return error_response(404, "Not Found")
    if req.method not in ("GET", "HEAD"):
        return error_response(405, "Method Not Allowed", [("Allow", "GET, HEAD")])
    try:
        return await route(req)
    except Exception:
        log.exception("http_route_error", path=req.path)
        return error_response(500, "Internal Server Error")


async def _send_response(
    stream: trio.abc.Stream, conn: h11.Connection, req: HttpRequest, resp: HttpResponse
) -> bool:
    """Send `resp`; False when the connection must close afterwards."""
    if resp.file is not None and req.method != "HEAD" and resp.status != 304:
        return await _send_file_response(stream, conn, req, resp, resp.file)
    await stream.send_all(_head(conn, resp) + _body_and_end(conn, req, resp))
    return conn.our_state is not h11.MUST_CLOSE


def _head(conn: h11.Connection, resp: HttpResponse) -> bytes:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers]
    if resp.status != 304:  # a 304 may only repeat the 200's length, so it carries none
        length = resp.file.length if resp.file is not None else len(resp.body)
        headers.append((b"Content-Length", str(length).encode()))
    event = h11.Response(status_code=resp.status, headers=headers, reason=_reason(resp.status))
    return conn.send(event) or b""


def _body_and_end(conn: h11.Connection, req: HttpRequest, resp: HttpResponse) -> bytes:
    out = b""
    if req.method != "HEAD" and resp.body and resp.status != 304:
        out += conn.send(h11.Data(data=resp.body)) or b""
    return out + (conn.send(h11.EndOfMessage()) or b"")


def _open_regular(path: str | bytes, flags: int) -> int:
    """Open a regular file only: a path swapped since the route looked at it for a symlink is
    not followed, and one swapped for a FIFO or device neither blocks nor gets read. Its
    folder (a media device folder) is opened without following a symlink too, so a folder
    replaced by a link to elsewhere is not served through."""
    parent, name = os.path.split(os.fsdecode(path))
    dir_fd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ENOENT, "not a regular file", path)
    return fd


async def _send_file_response(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    req: HttpRequest,
    resp: HttpResponse,
    body: FileBody,
) -> bool:
    """Open the file, then send the head and stream `body` in chunks (h11 counts the bytes)."""
    try:
        file = await trio.open_file(body.path, "rb", opener=_open_regular)
    except OSError as exc:
        log.warning("http_file_open_failed", path=str(body.path), error=exc.strerror)
        return await _send_response(stream, conn, req, error_response(404, "Not Found"))
    async with file:
        await stream.send_all(_head(conn, resp))
        await file.seek(body.offset)
        remaining = body.length
        while remaining > 0:
            chunk = await file.read(min(FILE_CHUNK_BYTES, remaining))
            if not chunk:
                # The file shrank since the head promised its length: closing the
                # connection is the only honest end (the client sees a short body).
                log.warning("http_file_truncated", path=str(body.path), missing=remaining)
                return False
            remaining -= len(chunk)
            await stream.send_all(conn.send(h11.Data(data=chunk)) or b"")
    await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
    return conn.our_state is not h11.MUST_CLOSE


async def _send_simple(stream: trio.abc.Stream, conn: h11.Connection, resp: HttpResponse) -> None:
    headers = [(k.encode(), v.encode()) for k, v in resp.headers]
    headers += [(b"Content-Length", str(len(resp.body)).encode()), (b"Connection", b"close")]
    try:
        out = (
            conn.send(
                h11.Response(status_code=resp.status, headers=headers, reason=_reason(resp.status))
            )
            or b""
        )
        out += conn.send(h11.Data(data=resp.body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError:
        return
    # The connection closes after this whatever happens: a failed or stuck write ends it too.
    with trio.move_on_after(1):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, _WriteTimeout):
            await stream.send_all(out)
