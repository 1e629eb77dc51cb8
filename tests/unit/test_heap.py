"""camsvc.heap: large blocks stay mmapped once the threshold is pinned; trim gives back free
arena pages; `camsvc serve`'s trimmer and worker-thread cap."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import subprocess
import sys
import threading

import pytest
import trio

from camsvc import heap
from camsvc.app import App
from camsvc.streaming.standin import StandIn

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")

BLOCK = 64 * 1024  # under glibc's mmap threshold: carved from the heap
BLOCKS = 1600  # 100 MiB


def _rss_anon_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


def test_trim_returns_freed_heap_pages() -> None:
    """100 MiB freed below a live block stay resident after free(); trim gives them back."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    assert all(blocks)
    for block in blocks:
        ctypes.memset(block, 1, BLOCK)
    keeper = libc.malloc(BLOCK)  # above the others: the heap's top cannot shrink past it
    for block in blocks:
        libc.free(block)
    try:
        before = _rss_anon_kib()
        assert heap.trim() is True
        released_mib = (before - _rss_anon_kib()) / 1024
    finally:
        libc.free(keeper)
    assert released_mib > 0.8 * BLOCK * BLOCKS / 2**20, f"{released_mib:.1f} MiB released"


_AFTER_A_LARGE_FREE = """
import ctypes, sys
from camsvc import heap
from camsvc.app import App
from camsvc.streaming.standin import StandIn

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "pinned":
    assert heap.pin_mmap_threshold()
libc.free(libc.malloc(16 << 20))  # an encoder's block going: glibc raises its threshold to it
before = libc.mallinfo2().hblks
block = libc.malloc(6 << 20)  # the next encoder's block
print(libc.mallinfo2().hblks - before)
libc.free(block)
"""


@pytest.mark.parametrize(("mode", "mmapped"), [("default", 0), ("pinned", 1)])
def test_pinned_threshold_keeps_large_blocks_mmapped(mode: str, mmapped: int) -> None:
    """By default a freed 16 MiB block sends the next 6 MiB one into an arena (where freed
    memory stays resident); pinned, it still gets its own mmap (unmapped when freed)."""
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_A_LARGE_FREE, mode],
        capture_output=True,
        text=True,
        check=True,
        # glibc's defaults, whatever this run was started with
        env={
            k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))
        },
    )
    assert int(done.stdout) == mmapped


async def test_trim_every_trims_in_a_worker_until_cancelled(monkeypatch) -> None:
    """`camsvc serve`'s trimmer: `trim` again and again, each in a worker thread, not on the
    event loop's; cancelling it ends it."""
    main = threading.get_ident()
    threads: list[int] = []
    third = trio.Event()

    def trim() -> bool:
        threads.append(threading.get_ident())
        if len(threads) == 3:
            trio.from_thread.run_sync(third.set)
        return True

    monkeypatch.setattr(heap, "trim", trim)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heap.trim_every, 0.01)
            await third.wait()
            nursery.cancel_scope.cancel()
    assert len(threads) == 3 and main not in threads


def test_worker_threads_twice_the_cpus_at_least_eight(monkeypatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert heap.worker_threads() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert heap.worker_threads() == 32
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert heap.worker_threads() == 8


async def test_app_run_caps_the_worker_threads(nursery, make_config) -> None:
    """`App.run(worker_threads=n)` (what `camsvc serve` passes) caps Trio's worker threads
    for the service's run; without it Trio's default stays."""
    limiter = trio.to_thread.current_default_thread_limiter()
    assert limiter.total_tokens == 40  # Trio's default
    standin = await nursery.start(StandIn().run)
    app = App(make_config(mediamtx={"api_url": standin.api_url, "spawn": "never"}))
    await nursery.start(functools.partial(app.run, handle_signals=False, worker_threads=3))
    assert limiter.total_tokens == 3
