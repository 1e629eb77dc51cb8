"""The floor under notification fan-out on this machine: plain `write(2)` to N sockets.

A child process (standing where the server stands) holds N accepted loopback TCP sockets
and writes one message of the notification's size to each, in one tight loop with no
framing, no Python objects and no event loop; this process reads them with one epoll loop,
as the fan-out clients do. "last arrival" is the clock at the wake-up that read the last
client's bytes minus the clock just before the writer's first `write(2)` (CLOCK_MONOTONIC is
one clock for every process). No Python service can deliver to N TCP clients in less than
that on the same machine at the same moment, so the fan-out figures are reported next to it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import socket
import time
from multiprocessing.connection import Connection

import msgspec

from benchmarks.wsclient import Stats, stats_ms

__all__ = ["WriteFloor", "measure"]


class WriteFloor(msgspec.Struct, kw_only=True):
    """Plain write(2) fan-out: writer loop time and last arrival, over `rounds` rounds."""

    clients: int
    message_bytes: int
    rounds: int
    writer_loop: Stats
    last_arrival: Stats


def _writer(port: int, clients: int, size: int, rounds: int, pipe: Connection) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
    fds = [s.fileno() for s in socks]
    message = b"x" * size
    for _ in range(rounds):
        pipe.recv()  # the reader is idle in epoll_wait again
        t0 = time.monotonic_ns()
        for fd in fds:
            os.write(fd, message)
        pipe.send((t0, time.monotonic_ns() - t0))
    pipe.recv()
    for s in socks:
        s.close()


def measure(clients: int, size: int, rounds: int = 30, gap_s: float = 0.05) -> WriteFloor:
    """Run the plain fan-out `rounds` times and summarise it."""
    ctx = mp.get_context("spawn")
    listener = socket.create_server(("127.0.0.1", 0), backlog=clients)
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(
        target=_writer, args=(listener.getsockname()[1], clients, size, rounds, theirs)
    )
    proc.start()
    conns = [listener.accept()[0] for _ in range(clients)]
    ep = select.epoll()
    for c in conns:
        c.setblocking(False)
        ep.register(c.fileno(), select.EPOLLIN)
    by_fd = {c.fileno(): c for c in conns}
    arrivals: list[int] = []
    loops: list[int] = []
    try:
        for _ in range(rounds):
            time.sleep(gap_s)
            ours.send(None)
            got, last = 0, 0
            while got < clients * size:
                events = ep.poll(5.0)
                if not events:
                    raise TimeoutError("plain fan-out: bytes missing after 5 s")
                last = time.monotonic_ns()
                for fd, _ in events:
                    got += len(by_fd[fd].recv(65536))
            t0, loop_ns = ours.recv()
            arrivals.append(last - t0)
            loops.append(loop_ns)
        ours.send(None)
    finally:
        proc.join(10)
        ep.close()
        for c in conns:
            c.close()
        listener.close()
    writer_loop, last_arrival = stats_ms(loops), stats_ms(arrivals)
    assert writer_loop is not None and last_arrival is not None
    return WriteFloor(
        clients=clients,
        message_bytes=size,
        rounds=rounds,
        writer_loop=writer_loop,
        last_arrival=last_arrival,
    )


if __name__ == "__main__":
    for n in (100, 1000):
        floor = measure(n, 260)
        print(msgspec.json.format(msgspec.json.encode(floor)).decode())
