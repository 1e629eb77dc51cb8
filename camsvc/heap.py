"""The C heap of `camsvc serve`: glibc's malloc tuned so freed memory goes back, and the
worker threads that keep heap memory resident capped.

Why: a 1080p camera's encoder (MJPEG decoder, scaler, libx264) holds about 50 MiB of C
memory, mostly in a few 6 MiB blocks. glibc serves blocks above its mmap threshold with mmap
(unmapped when freed), but by default raises that threshold to the size of each mmapped block
that is freed: once one encoder has closed, the next ones are carved from the malloc arenas
of whichever threads open and feed them, and memory freed inside an arena stays resident.
Every unplug or MediaMTX restart (encoders closed and reopened) left the service larger: the
240 s soak grew +10 % to +26 % after its warm-up, the 30-minute one +43 %.
`pin_mmap_threshold` fixes the threshold for good (docs/reliability.md, Soak, has the runs);
`trim` gives back the pages freed inside the arenas, and `trim_every` does so periodically.

Why 4 MiB and not glibc's initial 128 KiB: every block at or above the threshold is mapped
afresh when allocated, and a frame's pictures are allocated per frame (the 3 MiB yuv420p
picture of a 1080p MJPEG frame: at 128 KiB, ~770 page faults and ~1.6 ms of CPU per frame,
60,000 faults a second with 4 cameras). Under 4 MiB they are reused from the arena instead;
what the encoders' threads free there is handed back by `trim`, every minute.

Every worker thread that has run keeps a malloc arena (glibc makes up to 8 per CPU) whose
working set stays resident between trims, and its stack: `worker_threads` is the cap
`camsvc serve` sets on Trio's worker threads (40 by default, reached in snapshot bursts).

All of these are the process owner's call, so `camsvc serve` makes them (the pin at start,
`trim_every` and the cap through `App.run`), not the app itself: code that embeds camsvc keeps
its own malloc and threads.

Must not: matter for correctness (without glibc they do nothing), or run `trim` on the event
loop (it walks and locks every arena: call it from a worker thread), or on a stop path (it
takes as long as the heap is large).
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Final

import trio

__all__ = [
    "MMAP_THRESHOLD",
    "TRIM_PERIOD_S",
    "pin_mmap_threshold",
    "trim",
    "trim_every",
    "worker_threads",
]

#: Above a 1080p frame's pictures, below an encoder's large blocks; setting it explicitly
#: turns glibc's dynamic raise off.
MMAP_THRESHOLD: Final = 4 * 1024 * 1024
_M_MMAP_THRESHOLD: Final = -3  # mallopt's parameter number (malloc.h)
#: How often `camsvc serve` trims: what a closed encoder left in an arena goes within a
#: minute, and a trim of the service's heap (a few ms in a worker) costs nothing at that rate.
TRIM_PERIOD_S: Final = 60.0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None  # not glibc
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def pin_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Serve every block of `size` bytes or more with its own mmap, for the rest of the
    process (no dynamic raise); False where it cannot (not glibc)."""
    libc = _libc()
    return libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, size) == 1


def trim() -> bool:
    """Return the free pages of every malloc arena to the system; False where it cannot
    (not glibc) or nothing was released. Blocking: call from a worker thread."""
    libc = _libc()
    return libc is not None and libc.malloc_trim(0) == 1


def worker_threads() -> int:
    """How many worker threads `camsvc serve` lets run at once: twice the CPUs, at least 8.

    Their work is encoding and file writes, which cannot use more CPUs than there are, and
    each thread that ever ran keeps a malloc arena's pages and its stack resident: with Trio's
    default of 40, a snapshot burst on a loaded machine started 40 threads, each leaving its
    arena's working set behind."""
    return max(8, 2 * (os.cpu_count() or 1))


async def trim_every(period_s: float = TRIM_PERIOD_S) -> None:
    """`trim` in a worker thread every `period_s` until cancelled."""
    if _libc() is None:
        return
    while True:
        await trio.sleep(period_s)
        await trio.to_thread.run_sync(trim)
