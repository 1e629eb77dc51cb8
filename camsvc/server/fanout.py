"""One message offered to many client sockets at once, in C (`camsvc._fanout`).

The notification fan-out costs one `send(2)` per client. Written from Python, it also paid
a few microseconds of interpreter per client; here the loop runs in C with the GIL
released, and Python walks the results only when some socket did not take the whole
message.

On loopback, or a fast network, each send does the kernel's whole delivery work, about
10 us, so 1,000 clients take 10 ms of one core. From `SPLIT_AT` sockets up, a helper
thread from Trio's own cache (`trio.lowlevel.start_thread_soon`, the pool behind
`trio.to_thread`) joins in: both threads take `CHUNK` sockets at a time from the same job
until none is left. The calling thread always runs the job to the end itself, so a helper
that the scheduler wakes late takes fewer sockets or none, and is waited for only if it
took some. To the event loop the fan-out is still one synchronous step: no other task
writes to these sockets meanwhile, and every client's bytes stay in order.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from camsvc._fanout import ffi, lib

if TYPE_CHECKING:
    import outcome

__all__ = ["CHUNK", "SPLIT_AT", "send_each"]

SPLIT_AT = 200  # below this, waking a thread costs about what its help saves
CHUNK = 32  # sockets a thread takes at a time: about 0.3 ms of sends


def send_each(fds: Sequence[int], data: bytes) -> list[tuple[int, int]]:
    """Offer `data` to every socket in `fds` (each once) with one non-blocking send each.

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
        helper = _Helper(job, keep=(fds_c, sent, buf))
        short = lib.fanout_run(job, CHUNK)
        short += helper.join()
    if not short:
        return []
    return [(i, r) for i, r in enumerate(ffi.unpack(sent, n)) if r != size]


class _Helper:
    """`fanout_run` of one job on a Trio worker thread, alongside the caller's own.

    The job only points at its arrays; `keep` holds them for as long as the helper may
    still run, which can be after `send_each` returned (when it started too late to help).
    """

    def __init__(self, job: Any, keep: tuple[Any, ...]) -> None:
        self._job, self._keep = job, keep
        self._began = False
        self._done = threading.Lock()
        self._done.acquire()
        self._result: outcome.Outcome[int] | None = None

        def run() -> int:
            self._began = True  # before it takes any socket: see join
            return lib.fanout_run(self._job, CHUNK)

        # No thread to be had (the process's limit) means no help: the caller does it all.
        with contextlib.suppress(RuntimeError):
            trio.lowlevel.start_thread_soon(run, self._deliver)

    def _deliver(self, result: outcome.Outcome[int]) -> None:
        self._result = result
        self._done.release()

    def join(self) -> int:
        """Call once the caller's own run has returned: every socket is taken by then. A
        helper that had not begun took none (anything it takes later is past the end), so
        it is not waited for; one that had is waited for. Returns its short count."""
        if not self._began:
            return 0
        self._done.acquire()
        assert self._result is not None
        return self._result.unwrap()
