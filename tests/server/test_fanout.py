"""`send_each`: one message offered to many sockets in one C call (camsvc._fanout)."""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import trio

from camsvc.server import fanout
from camsvc.server.fanout import send_each

MESSAGE = b"\x81\x05hello"


Pairs = list[tuple[socket.socket, socket.socket]]


@pytest.fixture
def pairs() -> Iterator[Callable[[int], Pairs]]:
    """`pairs(n)`: n connected socket pairs, closed after the test."""
    made: Pairs = []

    def make(count: int) -> Pairs:
        made.extend(socket.socketpair() for _ in range(count))
        return made[-count:]

    yield make
    for a, b in made:
        a.close()
        b.close()


def _received(peers: list[socket.socket]) -> list[bytes]:
    for peer in peers:
        peer.setblocking(False)
    return [peer.recv(1 << 20) for peer in peers]


@pytest.fixture
def small_split(monkeypatch):
    """A worker thread from 4 sockets up, both threads taking 2 sockets at a time."""
    monkeypatch.setattr(fanout, "SPLIT_AT", 4)
    monkeypatch.setattr(fanout, "CHUNK", 2)


@pytest.mark.parametrize("count", [1, 3, 4, 9, 101])
def test_every_socket_gets_the_whole_message_once(pairs, small_split, count):
    """Below and above the size where a Trio worker thread shares the job: no socket is
    missed or sent to twice, whichever thread takes it."""
    socks = pairs(count)
    assert send_each([a.fileno() for a, _ in socks], MESSAGE) == []
    assert _received([b for _, b in socks]) == [MESSAGE] * count


def test_no_sockets_no_call():
    assert send_each([], MESSAGE) == []


@pytest.mark.parametrize("bad_at", [0, 5, 7])
def test_a_failing_descriptor_is_reported_at_its_position_and_the_rest_still_get_it(
    pairs, small_split, tmp_path, bad_at
):
    """A descriptor that is no socket gives its -errno; the others are not held up by it,
    whichever thread's chunk it falls in."""
    socks = pairs(8)
    fds = [a.fileno() for a, _ in socks]
    not_a_socket = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY)
    try:
        fds[bad_at] = not_a_socket
        assert send_each(fds, MESSAGE) == [(bad_at, -errno.ENOTSOCK)]
    finally:
        os.close(not_a_socket)
    peers = [b for i, (_, b) in enumerate(socks) if i != bad_at]
    assert _received(peers) == [MESSAGE] * 7


def test_a_full_socket_takes_part_then_nothing(pairs):
    """What a socket's buffer cannot hold is reported as the part it took, then EAGAIN."""
    ((a, b),) = pairs(1)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 4000
    [(position, took)] = send_each([a.fileno()], big)
    assert position == 0 and 0 < took < len(big)
    assert send_each([a.fileno()], big) == [(0, -errno.EAGAIN)]
    b.setblocking(False)
    got = b""
    while len(got) < took:
        got += b.recv(took - len(got))
    assert got == big[:took]


def test_without_a_worker_thread_the_calling_thread_sends_to_all(pairs, small_split, monkeypatch):
    """When no thread can be started (the process's limit), nobody is left out."""

    def no_thread(*_: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(trio.lowlevel, "start_thread_soon", no_thread)
    socks = pairs(9)
    assert send_each([a.fileno() for a, _ in socks], MESSAGE) == []
    assert _received([b for _, b in socks]) == [MESSAGE] * 9


def test_two_threads_on_one_job_send_to_each_socket_once(pairs):
    """The C side of the split: two threads released together on the same job, one socket
    at a time, share it out; every socket gets the message exactly once, and the short
    counts of the two calls add up to the failures."""
    socks = pairs(200)
    fds = [a.fileno() for a, _ in socks]
    fds[150] = -1  # EBADF, wherever it lands
    ffi, lib = fanout.ffi, fanout.lib
    fds_c = ffi.new("int[]", fds)
    sent = ffi.new("ssize_t[]", len(fds))
    buf = ffi.from_buffer(MESSAGE)
    job = ffi.new("struct fanout_job *", (fds_c, len(fds), buf, len(MESSAGE), sent, 0))
    start = threading.Barrier(2)
    shorts: list[int] = []

    def run() -> None:
        start.wait()
        shorts.append(lib.fanout_run(job, 1))

    other = threading.Thread(target=run)
    other.start()
    run()
    other.join()
    assert sum(shorts) == 1
    assert [i for i, r in enumerate(ffi.unpack(sent, len(fds))) if r != len(MESSAGE)] == [150]
    peers = [b for i, (_, b) in enumerate(socks) if i != 150]
    assert _received(peers) == [MESSAGE] * 199


def test_a_helper_that_starts_after_the_caller_finished_is_not_waited_for(
    pairs, small_split, monkeypatch
):
    """The caller runs the whole job itself while the helper thread has not begun, and
    returns without waiting for it; the helper, when it runs at last, finds nothing left
    and sends nothing twice."""
    held: list[Callable[[], int]] = []
    monkeypatch.setattr(trio.lowlevel, "start_thread_soon", lambda fn, deliver: held.append(fn))
    socks = pairs(9)
    assert send_each([a.fileno() for a, _ in socks], MESSAGE) == []
    assert _received([b for _, b in socks]) == [MESSAGE] * 9
    [late_helper] = held
    assert late_helper() == 0
    for _, b in socks:
        with pytest.raises(BlockingIOError):
            b.recv(1)
