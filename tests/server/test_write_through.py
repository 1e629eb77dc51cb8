"""Direct notification writes: frame encoding and the write-through socket stream."""

from __future__ import annotations

import socket

import pytest
import trio
import wsproto.frame_protocol as fp

from camsvc.server.streams import WriteThroughStream
from camsvc.server.websocket import text_frame


def _decode(data: bytes) -> list[str]:
    """Text messages in `data` as a WebSocket client decodes them (wsproto's frame parser)."""
    proto = fp.FrameProtocol(client=True, extensions=[])
    proto.receive_bytes(data)
    return [frame.payload for frame in proto.received_frames()]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_decodes_at_every_length_boundary(size: int) -> None:
    """Each payload-length form (7-bit, 16-bit, 64-bit) decodes to the same text."""
    payload = b"a" * size
    assert _decode(text_frame(payload)) == ["a" * size]


async def _pair(sndbuf: int | None = None) -> tuple[WriteThroughStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    if sndbuf is not None:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    return WriteThroughStream(trio.SocketStream(a)), trio.SocketStream(b)


async def _read_exactly(stream: trio.SocketStream, n: int) -> bytes:
    out = bytearray()
    with trio.fail_after(5):
        while len(out) < n:
            out += await stream.receive_some(n - len(out))
    return bytes(out)


async def test_idle_stream_writes_at_once() -> None:
    """With no writer active the bytes reach the peer without any await by the caller."""
    ours, peer = await _pair()
    assert ours.try_write(b"hello")
    assert not ours.backlogged
    assert await _read_exactly(peer, 5) == b"hello"


async def test_busy_stream_refuses_direct_write() -> None:
    """While an awaited send holds the stream, a direct write is refused (the caller
    queues), so two writers never interleave their bytes."""
    ours, peer = await _pair(sndbuf=4096)
    big = b"a" * 1_000_000
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ours.send_all, big)
        await trio.testing.wait_all_tasks_blocked()  # send_all now waits for room
        assert not ours.try_write(b"b")
        assert await _read_exactly(peer, len(big)) == big
    assert ours.try_write(b"b")
    assert await _read_exactly(peer, 1) == b"b"


async def test_partial_write_backlog_goes_out_first() -> None:
    """A direct write the socket takes only in part keeps its rest, which goes out before
    the next send and before any other direct write."""
    ours, peer = await _pair(sndbuf=4096)
    big = bytes(range(256)) * 4000  # far more than the socket buffers hold
    assert ours.try_write(big)
    assert ours.backlogged
    assert not ours.try_write(b"later")  # must not jump the queue

    async def reader() -> bytes:
        return await _read_exactly(peer, len(big) + 4)

    got: list[bytes] = []
    async with trio.open_nursery() as nursery:

        async def collect() -> None:
            got.append(await reader())

        nursery.start_soon(collect)
        await ours.send_all(b"tail")
    assert not ours.backlogged
    assert got == [big + b"tail"]


async def test_flush_sends_only_the_backlog() -> None:
    """`flush` completes a partial write and nothing more."""
    ours, peer = await _pair(sndbuf=4096)
    big = b"z" * 500_000
    assert ours.try_write(big)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ours.flush)
        assert await _read_exactly(peer, len(big)) == big
    assert not ours.backlogged
    await ours.flush()  # nothing left: returns at once


async def test_closed_stream_refuses_direct_write() -> None:
    """After close the socket number may be reused by another connection: no write."""
    ours, _peer = await _pair()
    await ours.aclose()
    assert not ours.try_write(b"x")


async def test_peer_gone_refuses_direct_write() -> None:
    """A write error is left for the awaited path to meet and handle."""
    ours, peer = await _pair()
    await peer.aclose()
    assert not ours.try_write(b"x")
