"""Hostile clients on loopback (API.md §2): slow or silent heads, half-open and never-reading
sockets, connection churn, frames too big, fragmented or not UTF-8, compression offers and
ping floods. Each test bounds its waits with `fail_after`; the service must drop only the
offender and keep answering everyone else.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from typing import Any

import psutil
import pytest
import trio
import trio.testing
import trio_websocket
import wsproto
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

OP_CONT, OP_TEXT, OP_PING = 0x0, 0x1, 0x9
PING = '{"jsonrpc":"2.0","method":"ping","id":"p"}'
#: 1,000 in `make test`; `make test-long` sets CAMSVC_LONG=1 for 10,000.
CHURN = 10_000 if os.environ.get("CAMSVC_LONG") else 1_000


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One masked client frame (mask key 0: the payload goes as is, which RFC 6455 allows)."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        size = struct.pack("!BB", head, 0x80 | n)
    elif n < 65536:
        size = struct.pack("!BBH", head, 0x80 | 126, n)
    else:
        size = struct.pack("!BBQ", head, 0x80 | 127, n)
    return size + b"\0\0\0\0" + payload


class RawWs:
    """A WebSocket client on a raw socket: wsproto for the handshake and reading, hand-made
    frames for writing (so it can send what a polite client never would)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.accept: AcceptConnection | None = None

    @classmethod
    async def open(
        cls, port: int, *, rcvbuf: int | None = None, extensions: list[Any] | None = None
    ) -> RawWs:
        """Connect (with a small receive buffer when `rcvbuf`) and finish the handshake."""
        sock = trio.socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect(("127.0.0.1", port))
        client = cls(trio.SocketStream(sock))
        request = Request(host="127.0.0.1", target="/ws", extensions=extensions or [])
        await client.stream.send_all(client.ws.send(request))
        event = await client.next_event()
        assert isinstance(event, AcceptConnection), event
        client.accept = event
        return client

    async def next_event(self) -> Any:
        """The next event, or None at EOF."""
        while True:
            for event in self.ws.events():
                return event
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return None
            if not data:
                return None
            self.ws.receive_data(data)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        await self.stream.send_all(data)

    async def reply_to(self, request_id: str) -> dict[str, Any]:
        """Read (answering pings) until the response with `request_id`."""
        while True:
            event = await self.next_event()
            assert event is not None and not isinstance(event, CloseConnection), event
            if isinstance(event, Ping):
                await self.stream.send_all(self.ws.send(event.response()))
            elif isinstance(event, TextMessage):
                reply = json.loads(event.data)
                if isinstance(reply, dict) and reply.get("id") == request_id:
                    return reply

    async def server_close_code(self, svc: Any) -> int | None:
        """Read until the connection ends; the close code the server chose for it.

        trio-websocket fails a connection on a protocol error (bad UTF-8, RSV1) by closing TCP
        without sending the close frame (RFC 6455 §7.1.7 says SHOULD send), so the code is
        read on the server side; a close frame, if one comes, must carry the same code.
        """
        [conn] = list(svc.app.connections)
        code = await self.close_code()
        assert code in (None, conn.ws.closed.code if conn.ws.closed else None), code
        await wait_connections(svc, 0)
        return conn.ws.closed.code if conn.ws.closed else None

    async def close_code(self) -> int | None:
        """Read until the server closes: its close code, or None when the socket just ended."""
        while True:
            event = await self.next_event()
            if event is None:
                return None
            if isinstance(event, CloseConnection):
                return event.code


async def read_all(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return data
        if not chunk:
            return data
        data += chunk


async def wait_connections(svc: Any, n: int) -> None:
    """Wait until the service holds `n` WebSocket connections."""
    while len(svc.app.connections) != n:
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        await trio.sleep(0.01)


async def trickle_fragments(raw: RawWs) -> None:
    """Send a one-byte continuation fragment every 0.1 s until the connection ends."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while True:
            await trio.sleep(0.1)
            await raw.send_raw(frame(OP_CONT, b" ", fin=False))


async def ping_round_trip(client: Any) -> None:
    """A ping answered within 2 s."""
    with trio.fail_after(2):
        assert await client.call("ping") == "pong"


class TestSlowloris:
    """Heads trickled or never sent are cut off by read_timeout."""

    READ_TIMEOUT = 0.5

    @pytest.mark.parametrize(
        "head",
        [
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"X-Pad: " + b"a" * 200 + b"\r\n\r\n",
        ],
        ids=["http", "upgrade"],
    )
    async def test_trickled_head_gets_408(self, start_service, head):
        """A head sent a byte at a time (never finished in time) is 408 and closed within
        read_timeout: the bound is on the whole head, not per read."""
        svc = await start_service(server={"read_timeout": self.READ_TIMEOUT})
        stream = await trio.open_tcp_stream("127.0.0.1", svc.ports.main)

        async def trickle() -> None:
            for byte in head:
                try:
                    await stream.send_all(bytes([byte]))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                await trio.sleep(0.02)  # 200+ bytes: far longer than read_timeout

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            with trio.fail_after(self.READ_TIMEOUT + 3):
                data = await read_all(stream)
            nursery.cancel_scope.cancel()
        assert data.startswith(b"HTTP/1.1 408"), data
        assert trio.current_time() - start < self.READ_TIMEOUT + 2
        assert len(svc.app.connections) == 0

    async def test_silent_connection_is_closed(self, start_service):
        """A connection that sends nothing is closed after read_timeout, without a reply."""
        svc = await start_service(server={"read_timeout": self.READ_TIMEOUT})
        stream = await trio.open_tcp_stream("127.0.0.1", svc.ports.main)
        with trio.fail_after(self.READ_TIMEOUT + 3):
            assert await read_all(stream) == b""

    async def test_idle_keep_alive_is_closed(self, start_service):
        """After a served request, a connection that stays silent is closed as well."""
        svc = await start_service(server={"read_timeout": self.READ_TIMEOUT})
        stream = await trio.open_tcp_stream("127.0.0.1", svc.ports.main)
        await stream.send_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(self.READ_TIMEOUT + 3):
            data = await read_all(stream)
        assert data.startswith(b"HTTP/1.1 200") and data.count(b"HTTP/1.1") == 1

    async def test_many_slow_clients_do_not_block_others(self, start_service, connect):
        """Fifty stalled heads at once: health and WebSocket clients are still served."""
        svc = await start_service(server={"read_timeout": 2})
        stalled = [await trio.open_tcp_stream("127.0.0.1", svc.ports.main) for _ in range(50)]
        for stream in stalled:
            await stream.send_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        client = await connect(svc)
        await ping_round_trip(client)
        for stream in stalled:
            await stream.aclose()


class TestDeadPeers:
    """Peers that vanish without FIN, or stop reading, are dropped; others are not slowed."""

    async def test_half_open_socket_dropped_by_pong_timeout(self, start_service, connect):
        """A client that stops reading and writing (no FIN) is dropped after pong_wait."""
        svc = await start_service(server={"ping_interval": 0.1, "pong_wait": 0.3})
        raw = await RawWs.open(svc.ports.main)  # then never touched again: a vanished host
        other = await connect(svc)
        with trio.fail_after(5):
            await wait_connections(svc, 2)
            while len(svc.app.connections) != 1:
                # The polite client answers the pings (trio-websocket does) and stays.
                await ping_round_trip(other)
                await trio.sleep(0.05)
        await ping_round_trip(other)
        await raw.stream.aclose()

    async def test_never_reading_client_notifications(self, start_service, connect):
        """Notifications to a client that never reads: its outbox drops the oldest (counted),
        the blocked write times out and only that client is dropped."""
        svc = await start_service(
            server={"send_queue_size": 8, "write_timeout": 0.5, "write_buffer_size": 4096}
        )
        slow = await RawWs.open(svc.ports.main, rcvbuf=4096)
        token = svc.token("viewer")
        auth = json.dumps(
            {"jsonrpc": "2.0", "method": "authenticate", "params": {"auth_token": token}, "id": "a"}
        )
        await slow.send_raw(frame(OP_TEXT, auth.encode()))
        with trio.fail_after(5):
            assert (await slow.reply_to("a"))["result"]["authenticated"]
        polite = await connect(svc, "viewer")
        [slow_conn] = [c for c in svc.app.connections if c.rpc.session.role.label == "viewer"][:1]
        big = {"device": "camera0", "status": "CONNECTED", "pad": "x" * 16384}
        with trio.fail_after(10):
            for _ in range(200):
                svc.app.bus.notify_all("camera_status_update", big)
                await ping_round_trip(polite)  # the polite client is never held up
                if len(svc.app.connections) == 1:
                    break
            await wait_connections(svc, 1)
        assert slow_conn.dropped > 0
        assert polite.pending and all(m["method"] == "camera_status_update" for m in polite.pending)
        await ping_round_trip(polite)

    async def test_never_reading_client_responses(self, start_service, connect):
        """Responses to a client that never reads are never dropped: the write times out after
        write_timeout and that client alone is disconnected."""
        svc = await start_service(server={"write_timeout": 0.5, "write_buffer_size": 4096})
        slow = await RawWs.open(svc.ports.main, rcvbuf=4096)
        polite = await connect(svc)
        discover = b'{"jsonrpc":"2.0","method":"rpc.discover","id":1}'  # ~20 KB replies
        with trio.fail_after(10):
            for _ in range(100):
                try:
                    await slow.send_raw(frame(OP_TEXT, discover))
                except trio.BrokenResourceError:
                    break
                await ping_round_trip(polite)
                if len(svc.app.connections) == 1:
                    break
            await wait_connections(svc, 1)
        await ping_round_trip(polite)


class TestChurn:
    """Connections opened and closed in a loop leave nothing behind."""

    @pytest.mark.long
    async def test_open_close_churn(self, start_service, connect):
        """CHURN WebSocket connections (1,000; 10,000 with CAMSVC_LONG=1), 16 at a time, each
        answering one ping: the table empties, file descriptors return to their start."""
        svc = await start_service(server={"max_connections": 64})
        url = svc.url
        proc = psutil.Process()
        fds_before = proc.num_fds()
        limiter = trio.CapacityLimiter(16)
        done = 0

        async def one() -> None:
            nonlocal done
            async with limiter, trio_websocket.open_websocket_url(url) as ws:
                await ws.send_message(PING)
                assert json.loads(await ws.get_message())["result"] == "pong"
            done += 1

        with trio.fail_after(60 if CHURN <= 1000 else 600):  # a hang guard, not a timing
            async with trio.open_nursery() as nursery:
                for _ in range(CHURN):
                    nursery.start_soon(one)
            await wait_connections(svc, 0)
        assert done == CHURN
        assert svc.app.connections.total_accepted == CHURN
        assert proc.num_fds() <= fds_before + 4
        client = await connect(svc)
        await ping_round_trip(client)


class TestFrames:
    """Frame-level abuse: size, fragmentation, encoding, compression, ping floods."""

    async def test_fragmented_message_is_reassembled(self, service):
        """A request split over 200 continuation frames is one message, answered once."""
        raw = await RawWs.open(service.ports.main)
        text = json.dumps(
            {"jsonrpc": "2.0", "method": "ping", "params": {"pad": "x" * 2000}, "id": "f"}
        ).encode()
        parts = [text[i : i + 11] for i in range(0, len(text), 11)]
        out = frame(OP_TEXT, parts[0], fin=False)
        out += b"".join(frame(OP_CONT, p, fin=False) for p in parts[1:-1])
        out += frame(OP_CONT, parts[-1], fin=True)
        await raw.send_raw(out)
        with trio.fail_after(5):
            assert (await raw.reply_to("f"))["result"] == "pong"

    async def test_fragments_over_the_limit_close_1009(self, start_service):
        """Fragments that add up past max_message_size close with 1009 (none alone is big)."""
        svc = await start_service(server={"max_message_size": 4096})
        raw = await RawWs.open(svc.ports.main)
        out = frame(OP_TEXT, b'{"x":"', fin=False)
        out += b"".join(frame(OP_CONT, b"a" * 500, fin=False) for _ in range(10))
        await raw.send_raw(out)
        with trio.fail_after(5):
            assert await raw.close_code() == 1009

    async def test_huge_declared_frame_closes_1009(self, start_service):
        """A frame header announcing 1 GiB: 1009 as soon as max_message_size bytes arrived,
        without the server waiting for (or buffering) the rest."""
        svc = await start_service(server={"max_message_size": 4096})
        raw = await RawWs.open(svc.ports.main)
        head = struct.pack("!BBQ", 0x80 | OP_TEXT, 0x80 | 127, 1 << 30) + b"\0\0\0\0"
        await raw.send_raw(head + b"a" * 8192)
        with trio.fail_after(5):
            assert await raw.close_code() == 1009

    async def test_interleaved_ping_in_fragmented_message(self, service):
        """Control frames between fragments are answered and do not break reassembly."""
        raw = await RawWs.open(service.ports.main)
        await raw.send_raw(
            frame(OP_TEXT, b'{"jsonrpc":"2.0",', fin=False)
            + frame(OP_PING, b"mid")
            + frame(OP_CONT, b'"method":"ping","id":"i"}', fin=True)
        )
        with trio.fail_after(5):
            event = await raw.next_event()
            assert isinstance(event, Pong) and event.payload == b"mid"
            assert (await raw.reply_to("i"))["result"] == "pong"

    async def test_unfinished_message_closed_after_read_timeout(self, start_service, connect):
        """A first fragment and never the rest: closed with 1008 once read_timeout has passed
        since the message began; the server's wait is not reset by more fragments, and other
        clients are not affected."""
        svc = await start_service(server={"read_timeout": 1.0})
        polite = await connect(svc)
        for trickle in (False, True):
            raw = await RawWs.open(svc.ports.main)
            await raw.send_raw(frame(OP_TEXT, b'{"jsonrpc":"2.0",', fin=False))
            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                if trickle:
                    nursery.start_soon(trickle_fragments, raw)
                with trio.fail_after(5):
                    assert await raw.close_code() == 1008
                nursery.cancel_scope.cancel()
            assert trio.current_time() - started >= 1.0
            await raw.stream.aclose()
            await ping_round_trip(polite)
        with trio.fail_after(5):
            await wait_connections(svc, 1)

    async def test_message_completed_within_read_timeout(self, start_service):
        """Fragments spread over less than read_timeout make one message, answered."""
        svc = await start_service(server={"read_timeout": 2.0})
        raw = await RawWs.open(svc.ports.main)
        await raw.send_raw(frame(OP_TEXT, b'{"jsonrpc":"2.0",', fin=False))
        for part in (b'"method":', b'"ping",'):
            await trio.sleep(0.1)
            await raw.send_raw(frame(OP_CONT, part, fin=False))
        await raw.send_raw(frame(OP_CONT, b'"id":"late"}', fin=True))
        with trio.fail_after(5):
            assert (await raw.reply_to("late"))["result"] == "pong"

    @pytest.mark.parametrize(
        "payload",
        [b'{"jsonrpc":"2.0","method":"ping","id":"\xff"}', b"\xed\xa0\x80", b"\xc0\xaf"],
        ids=["invalid_byte", "surrogate", "overlong"],
    )
    async def test_invalid_utf8_closes_1007(self, service, connect, payload):
        """A text frame that is not UTF-8 fails the connection with 1007 (it never reaches the
        dispatcher); other clients are unaffected."""
        raw = await RawWs.open(service.ports.main)
        await wait_connections(service, 1)
        await raw.send_raw(frame(OP_TEXT, payload))
        with trio.fail_after(5):
            assert await raw.server_close_code(service) == 1007
        await ping_round_trip(await connect(service))

    async def test_invalid_utf8_split_across_fragments_closes_1007(self, service):
        """A multi-byte sequence cut between fragments is fine; a broken one is 1007."""
        raw = await RawWs.open(service.ports.main)
        good = '{"jsonrpc":"2.0","method":"ping","params":{"e":"é"},"id":"u"}'.encode()
        cut = good.index("é".encode()) + 1  # between the two bytes of é
        await raw.send_raw(
            frame(OP_TEXT, good[:cut], fin=False) + frame(OP_CONT, good[cut:], fin=True)
        )
        with trio.fail_after(5):
            assert (await raw.reply_to("u"))["result"] == "pong"
        await raw.send_raw(frame(OP_TEXT, b'"\xc3', fin=False) + frame(OP_CONT, b'("', fin=True))
        with trio.fail_after(5):
            assert await raw.server_close_code(service) == 1007

    async def test_permessage_deflate_not_negotiated(self, service):
        """A client offering permessage-deflate gets no extension: no compression, no bombs."""
        raw = await RawWs.open(service.ports.main, extensions=[PerMessageDeflate()])
        assert raw.accept is not None and raw.accept.extensions == []

    async def test_compressed_frame_is_a_protocol_error(self, service):
        """A frame with RSV1 (compressed) set anyway closes with 1002, never inflated."""
        raw = await RawWs.open(service.ports.main)
        await wait_connections(service, 1)
        await raw.send_raw(frame(OP_TEXT, b"\x4b\x4c\x04\x00", rsv1=True))
        with trio.fail_after(5):
            assert await raw.server_close_code(service) == 1002

    async def test_ping_flood(self, service, connect):
        """5,000 pings in one burst: answered (or bounded), then a request is still served, and
        another client is served meanwhile."""
        raw = await RawWs.open(service.ports.main)
        other = await connect(service)
        flood = frame(OP_PING, b"f" * 16) * 5000
        pongs = 0

        async def send() -> None:
            await raw.send_raw(flood + frame(OP_TEXT, PING.replace('"p"', '"after"').encode()))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                await ping_round_trip(other)
                while True:
                    event = await raw.next_event()
                    assert event is not None and not isinstance(event, CloseConnection)
                    if isinstance(event, Pong):
                        pongs += 1
                    elif isinstance(event, TextMessage):
                        assert json.loads(event.data)["id"] == "after"
                        break
        assert pongs <= 5000
        await ping_round_trip(other)

    async def test_ping_flood_from_a_client_that_never_reads(self, start_service, connect):
        """Pings from a client that never reads its pongs: that connection is dropped once the
        server's own ping goes unanswered (pong_wait); another client is served meanwhile."""
        svc = await start_service(
            server={"ping_interval": 0.2, "pong_wait": 0.5, "write_buffer_size": 4096}
        )
        raw = await RawWs.open(svc.ports.main, rcvbuf=4096)
        other = await connect(svc)
        flood = frame(OP_PING, b"f" * 125) * 2000

        async def send() -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await raw.send_raw(flood)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                await wait_connections(svc, 2)
                while len(svc.app.connections) != 1:
                    await ping_round_trip(other)
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
        await ping_round_trip(other)
