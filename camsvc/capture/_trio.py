"""Trio helpers: wait for frames on the device fd and encode JPEGs off the event loop.

The camera's fd becomes readable when a frame is ready; these helpers wait with
`trio.lowlevel.wait_readable` and dequeue without blocking. Large encodes run in
`trio.to_thread.run_sync`; the C call releases the GIL (cffi does so for every call).
Callers own timeouts (`trio.fail_after`). `EncodeAhead` trades one encode per frame for
snapshots that usually find the newest frame's JPEG already made.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator

import trio

from camsvc.capture._camera import DEFAULT_QUALITY, Camera, JpegJob
from camsvc.capture._errors import CameraClosed, CaptureError
from camsvc.capture._types import Frame, JpegFrame

__all__ = ["EncodeAhead", "frames", "snapshot", "wait_frame"]


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


class EncodeAhead:
    """Makes each new frame's JPEG as the frame arrives, in a worker thread.

    What ustreamer does for `/snapshot`, with one difference: `jpeg()` still answers with the
    newest frame at the moment it is called, made ahead (returned at once), being made
    (waited for), or not started (made now). The price is one encode per frame while `run()`
    runs (frames arriving during an encode are skipped): for YUYV 1080p at 30 fps about a
    fifth of a core. MJPEG at full size needs no encode and gains nothing.

    Whoever reads the camera's frames calls `frame_arrived()` after each new one; `run()`
    belongs in that owner's nursery.
    """

    def __init__(
        self,
        camera: Camera,
        quality: int = DEFAULT_QUALITY,
        max_size: tuple[int, int] | None = None,
    ) -> None:
        self.camera = camera
        self.quality = quality
        self.max_size = max_size
        self.made = 0  # frames encoded ahead
        self._arrived = trio.Event()
        self._making: tuple[JpegJob, trio.Event] | None = None
        self._first: trio.Event | None = None  # set once the first frame is announced

    def frame_arrived(self) -> None:
        """A new frame was read: encode it when the encoder is free."""
        self._arrived.set()
        if self._first is not None:
            self._first.set()

    async def run(self) -> None:
        """Encode the newest frame after each arrival, forever."""
        while True:
            await self._arrived.wait()
            self._arrived = trio.Event()
            job = self.camera.jpeg_job(self.quality, self.max_size)  # a copy: any thread
            if job is None or job.done is not None:
                continue
            finished = trio.Event()
            self._making = (job, finished)
            try:
                await trio.to_thread.run_sync(job.run)
            except CaptureError:
                pass  # a bad frame is skipped here; jpeg() of it raises the error itself
            else:
                self.camera.remember(job)
                self.made += 1
            finally:
                self._making = None
                finished.set()

    async def jpeg(self) -> JpegFrame:
        """The newest frame's JPEG: made ahead, being made, or made now.

        Before the first frame it waits for the encoder's first JPEG (never on the device fd,
        which the frame reader owns).
        """
        while True:
            done = self.camera.made_jpeg(self.quality, self.max_size)
            if done is not None:
                await trio.lowlevel.checkpoint()
                return done
            newest = self.camera.latest
            making = self._making
            if making is not None and (newest is None or making[0].key[:2] == _key(newest)):
                job, finished = making
                await finished.wait()
                if job.done is not None:
                    return job.done
                continue  # that encode failed: try again with the newest frame
            job = self.camera.jpeg_job(self.quality, self.max_size, copy=True)
            if job is None:  # no frame yet: wait for the reader to announce one
                if self._first is None or self._first.is_set():
                    self._first = trio.Event()
                await self._first.wait()
                continue
            result = await trio.to_thread.run_sync(job.run) if job.heavy else job.run()
            self.camera.remember(job)
            return result


def _key(frame: Frame) -> tuple[int, float]:
    return (frame.sequence, frame.timestamp)
