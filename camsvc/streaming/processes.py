"""Ending the child processes camsvc starts (MediaMTX, the publishers' RTSP relays)."""

from __future__ import annotations

import contextlib
import os
import signal

import trio

__all__ = ["end_process_group"]


async def end_process_group(proc: trio.Process, first: signal.Signals, grace_s: float) -> None:
    """Send `first` to `proc`'s process group, wait `grace_s`, then SIGKILL it; reap it.

    `proc` leads its own group (started with `start_new_session=True`), so whatever it
    started ends with it.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, first)
        with trio.move_on_after(grace_s):
            await proc.wait()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
