"""One message offered to many client sockets at once, in C (`camsvc._fanout`).

The notification fan-out costs one `send(2)` per client. Written from Python, it also paid
a few microseconds of interpreter per client; here the loop runs in C with the GIL
released, and Python looks only at the sockets that did not take the whole message.

On loopback, or a fast network, each send does the kernel's whole delivery work, about
10 us, so 1,000 clients take 10 ms of one core. From `SPLIT_AT` sockets up, a worker
thread from Trio's own cache (`trio.lowlevel.start_thread_soon`, the pool behind
`trio.to_thread`) sends too: both threads take `CHUNK` sockets at a time from the same
job until none is left, so a worker that the scheduler wakes late just takes fewer. The
call returns when both are done: to the event loop, the fan-out is still one synchronous
step, so no other task writes to these sockets meanwhile and every client's bytes stay in
order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

from camsvc._fanout import ffi, lib

if TYPE_CHECKING:
    import outcome

__all__ = ["CHUNK", "SPLIT_AT", "send_each"]

SPLIT_AT = 200  # below this, waking a thread costs about what half the sends save
CHUNK = 32  # sockets a thread takes at a time: about 0.3 ms of sends


def send_each(fds: Sequence[int], data: bytes) -> list[tuple[int, int]]:
    """Offer `data` to every socket in `fds` with one non-blocking send each.

    Returns `(position in fds, result)` for each socket that did not take all of it: the
    bytes it took, or a negative errno (`-EAGAIN` when its buffer was full).
    """
    n = len(fds)
    if not n:
        return []
    size = len(data)
    fds_c = ffi.new("int[]", fds)
    sent = ffi.new("ssize_t[]", n)
    buf = ffi.from_buffer(data)
    job = ffi.new("struct fanout_job *", (fds_c, n, buf, size, sent, 0))
    if n < SPLIT_AT:
        short = lib.fanout_run(job, n)
    else:
        # The job only points at its arrays: the worker's call holds them too, for as long
        # as it may run.
        arrays = (fds_c, sent, buf)
        rest = _start_in_worker(lambda arrays=arrays: lib.fanout_run(job, CHUNK))
        short = lib.fanout_run(job, CHUNK) + rest()
    if not short:
        return []
    return [(i, r) for i, r in enumerate(ffi.unpack(sent, n)) if r != size]


def _start_in_worker(send: Callable[[], int]) -> Callable[[], int]:
    """Start `send` on a Trio worker thread; the returned call waits for its result."""
    done = threading.Lock()
    done.acquire()
    box: list[outcome.Outcome[int]] = []

    def deliver(result: outcome.Outcome[int]) -> None:
        box.append(result)
        done.release()

    try:
        trio.lowlevel.start_thread_soon(send, deliver)
    except RuntimeError:  # no thread to be had (the process's limit): send it here after
        return send

    def join() -> int:
        done.acquire()
        return box[0].unwrap()

    return join
