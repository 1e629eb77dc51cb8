"""Trio helpers: wait for frames on the device fd and encode JPEGs off the event loop.

The camera's fd becomes readable when a frame is ready; these helpers wait with
`trio.lowlevel.wait_readable` and dequeue without blocking. Large encodes run in
`trio.to_thread.run_sync`; the C call releases the GIL (cffi does so for every call).
Callers own timeouts (`trio.fail_after`).
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator

import trio

from camsvc.capture._camera import DEFAULT_QUALITY, Camera
from camsvc.capture._errors import CameraClosed
from camsvc.capture._types import Frame, JpegFrame

__all__ = ["frames", "snapshot", "wait_frame"]


async def _wait_readable(camera: Camera) -> None:
    """Wait for the camera's fd; CameraClosed if another task closes the camera meanwhile."""
    try:
        await trio.lowlevel.wait_readable(camera.fileno())
    except trio.ClosedResourceError as exc:
        raise CameraClosed(errno.EBADF, "camera closed while waiting", camera.path) from exc


async def wait_frame(camera: Camera) -> Frame:
    """Wait until a new frame arrives and return it (the newest, if several did)."""
    while True:
        frame = camera.read_latest()
        if frame is not None:
            await trio.lowlevel.checkpoint()
            return frame
        await _wait_readable(camera)


async def frames(camera: Camera) -> AsyncIterator[Frame]:
    """Yield each new newest frame, forever (frames that arrive while you work are skipped)."""
    while True:
        yield await wait_frame(camera)


async def snapshot(
    camera: Camera,
    quality: int = DEFAULT_QUALITY,
    max_size: tuple[int, int] | None = None,
) -> JpegFrame:
    """JPEG of the newest frame, waiting for the first one if needed; big encodes in a thread."""
    job = camera.jpeg_job(quality, max_size)
    while job is None:
        await _wait_readable(camera)
        job = camera.jpeg_job(quality, max_size)
    if job.heavy:
        result = await trio.to_thread.run_sync(job.run)
    else:
        await trio.lowlevel.checkpoint()
        result = job.run()
    camera.remember(job)
    return result
