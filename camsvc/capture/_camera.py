"""One camera: open with a format, stream through an mmap ring, read the newest frame,
make JPEGs of it.

Owns `Camera`. It never blocks except in `jpeg(timeout_s=...)` when no frame has arrived
yet; the Trio helpers in `_trio.py` wait on `fileno()` instead. Not thread-safe, with
one exception: a `JpegJob` made by `Camera.jpeg_job()` may run in another thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from types import TracebackType
from typing import Final

from camsvc.capture._errors import CameraClosed, DeviceGone, FrameTimeout, error_from_code
from camsvc.capture._native import ffi, fsencode, lib, string
from camsvc.capture._types import CaptureStats, Format, Frame, JpegFrame, fourcc_code, fourcc_name

__all__ = ["DEFAULT_BUFFERS", "DEFAULT_QUALITY", "Camera", "JpegJob", "scale_for"]

DEFAULT_BUFFERS: Final = 4
DEFAULT_QUALITY: Final = 85
#: Frames bigger than this are encoded off the Trio thread by the async helpers.
THREAD_MIN_BYTES: Final = 256 * 1024
_MJPEG: Final = {fourcc_code("MJPG"), fourcc_code("JPEG")}
_SCALES: Final = (1, 2, 4, 8)


def scale_for(width: int, height: int, max_size: tuple[int, int] | None) -> int:
    """Smallest of 1, 2, 4, 8 that fits width x height within max_size (8 if none does)."""
    if max_size is None:
        return 1
    max_w, max_h = max_size
    for d in _SCALES:
        if width // d <= max_w and height // d <= max_h:
            return d
    return _SCALES[-1]


class _EncoderPool:
    """Idle `cap_jpeg` encoders (TurboJPEG handles and scratch planes), reused across calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[object] = []

    def take(self) -> object:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        enc = lib.cap_jpeg_new()
        if enc == ffi.NULL:
            raise MemoryError("cap_jpeg_new")
        return ffi.gc(enc, lib.cap_jpeg_free)

    def give(self, enc: object) -> None:
        with self._lock:
            if len(self._idle) < 2:
                self._idle.append(enc)


class JpegJob:
    """One frame ready to encode; `run()` may be called in any thread when `copied`.

    A job made with `copy=False` reads the frame in place in the mmap ring: it must run
    before the camera's next read or close, in the same thread.
    """

    def __init__(
        self,
        pool: _EncoderPool,
        raw: object,
        size: int,
        frame: Frame,
        bytesperline: int,
        quality: int,
        scale: int,
        path: str,
        *,
        copied: bool,
        done: JpegFrame | None = None,
    ) -> None:
        self._pool = pool
        self._raw = raw
        self._size = size
        self._frame = frame
        self._bytesperline = bytesperline
        self._quality = quality
        self._scale = scale
        self._path = path
        self.copied = copied
        self.done = done

    @property
    def key(self) -> tuple[int, float, int, int]:
        """What the JPEG depends on: frame (sequence, timestamp), quality and scale."""
        return (self._frame.sequence, self._frame.timestamp, self._quality, self._scale)

    @property
    def heavy(self) -> bool:
        """True when the encode is worth a worker thread."""
        if self.done is not None:
            return False
        return self._size >= THREAD_MIN_BYTES and (
            self._scale > 1 or fourcc_code(self._frame.fourcc) not in _MJPEG
        )

    def run(self) -> JpegFrame:
        """Encode (or, for MJPEG at full size, check and fix up) the frame; GIL released."""
        if self.done is not None:
            return self.done
        enc = self._pool.take()
        out = ffi.new("const uint8_t **")
        out_size = ffi.new("size_t *")
        out_w = ffi.new("uint32_t *")
        out_h = ffi.new("uint32_t *")
        f = self._frame
        rc = lib.cap_jpeg_encode(
            enc, self._raw, self._size, fourcc_code(f.fourcc), f.width, f.height,
            self._bytesperline, self._quality, self._scale, out, out_size, out_w, out_h,
        )  # fmt: skip
        try:
            if rc < 0:
                raise error_from_code(rc, string(lib.cap_jpeg_error(enc)), self._path)
            data = ffi.buffer(out[0], out_size[0])[:]
        finally:
            self._pool.give(enc)
        self.done = JpegFrame(data, out_w[0], out_h[0], f.sequence, f.timestamp)
        return self.done


class Camera:
    """A V4L2 capture device streamed through an mmap ring, keeping only the newest frame.

    Use as a context manager; `open()` starts streaming, `close()` (or leaving the
    `with` block) stops it and releases the device.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Prepare a handle for the node at path; nothing is opened yet."""
        self.path = os.fspath(path)
        handle = lib.cap_camera_new()
        if handle == ffi.NULL:
            raise MemoryError("cap_camera_new")
        self._cam = ffi.gc(handle, lib.cap_camera_free)
        self._format: Format | None = None
        self._latest: Frame | None = None
        self._pool = _EncoderPool()
        self._made: JpegJob | None = None
        self._cframe = ffi.new("struct cap_frame *")

    # lifecycle

    def open(
        self,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        buffers: int = DEFAULT_BUFFERS,
    ) -> Format:
        """Set the format (requested, else MJPEG > YUYV > NV12 at 640x480), start streaming.

        An open camera is closed first. Returns (and `format` then holds) what the driver set.
        """
        self.close()
        req = ffi.new("struct cap_request *")
        req.width = width or 0
        req.height = height or 0
        req.fourcc = fourcc_code(fourcc) if fourcc else 0
        if fps:
            req.fps_num, req.fps_den = _fraction(fps)
        req.buffers = buffers
        fmt = ffi.new("struct cap_format *")
        rc = lib.cap_camera_open(self._cam, fsencode(self.path), req, fmt)
        if rc < 0:
            self._format = None
            raise self._error(rc)
        self._format = Format(
            width=fmt.width,
            height=fmt.height,
            fourcc=fourcc_name(fmt.fourcc),
            bytesperline=fmt.bytesperline,
            sizeimage=fmt.sizeimage,
            fps=(fmt.fps_num / fmt.fps_den) if fmt.fps_den else None,
            buffers=fmt.buffers,
            multiplanar=bool(fmt.multiplanar),
        )
        return self._format

    def close(self) -> None:
        """Stop streaming and release the device; safe to call more than once."""
        fd = lib.cap_camera_fd(self._cam)
        if fd >= 0:
            _notify_closing(fd)
        lib.cap_camera_close(self._cam)
        self._format = None
        self._latest = None
        self._made = None

    def __enter__(self) -> Camera:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # state

    @property
    def format(self) -> Format:
        """The format the driver set on open."""
        if self._format is None:
            raise CameraClosed(errno.EBADF, "camera is not open", self.path)
        return self._format

    @property
    def is_open(self) -> bool:
        """True while streaming."""
        return self._format is not None

    def fileno(self) -> int:
        """The device fd, to wait on for readability (a new frame)."""
        fd = lib.cap_camera_fd(self._cam)
        if fd < 0:
            raise CameraClosed(errno.EBADF, "camera is not open", self.path)
        return fd

    def stats(self) -> CaptureStats:
        """Frames kept, dropped as bad, and replaced unseen since open."""
        st = ffi.new("struct cap_stats *")
        lib.cap_camera_stats(self._cam, st)
        return CaptureStats(st.frames, st.dropped, st.replaced)

    # frames

    def read_latest(self) -> Frame | None:
        """Dequeue without blocking; the newest good frame, or None if no new one arrived."""
        rc = lib.cap_camera_read(self._cam, self._cframe)
        if rc < 0:
            raise self._error(rc, close_if_gone=True)
        if rc == 0:
            return None
        c = self._cframe
        self._latest = Frame(
            sequence=c.sequence,
            timestamp=c.timestamp_ns / 1e9,
            width=c.width,
            height=c.height,
            fourcc=fourcc_name(c.fourcc),
            size=c.size,
        )
        return self._latest

    @property
    def latest(self) -> Frame | None:
        """The newest frame read so far (None before the first)."""
        return self._latest

    def frame_data(self) -> bytes | None:
        """A copy of the newest frame's bytes as the device delivered them (None before one).

        For feeding another consumer (an H.264 encoder); layout per `format`: YUYV rows of
        `bytesperline` bytes, NV12 luma then interleaved chroma, or one MJPEG frame.
        """
        if self._latest is None or lib.cap_camera_latest(self._cam, self._cframe) <= 0:
            return None
        return ffi.buffer(self._cframe.data, self._cframe.size)[:]

    def wait_readable(self, timeout_s: float) -> bool:
        """Block up to timeout_s for the fd to become readable; False on timeout."""
        rc = lib.cap_camera_wait(self._cam, max(0, int(timeout_s * 1000)))
        if rc < 0:
            raise self._error(rc, close_if_gone=True)
        return rc > 0

    def jpeg_job(
        self,
        quality: int = DEFAULT_QUALITY,
        max_size: tuple[int, int] | None = None,
        *,
        copy: bool = True,
    ) -> JpegJob | None:
        """A JpegJob for the newest frame (copied out of the ring unless copy=False).

        None when no frame has arrived yet. The same frame asked for again with the same
        quality and size gives the JPEG made the first time.
        """
        self.read_latest()
        if self._latest is None or lib.cap_camera_latest(self._cam, self._cframe) <= 0:
            return None
        c = self._cframe
        scale = self._scale(self._latest, max_size)
        raw = ffi.buffer(c.data, c.size)[:] if copy else c.data
        job = JpegJob(
            self._pool, raw, c.size, self._latest, c.bytesperline, quality, scale, self.path,
            copied=copy,
        )  # fmt: skip
        if self._made is not None and self._made.key == job.key:
            job.done = self._made.done
        return job

    def made_jpeg(
        self, quality: int = DEFAULT_QUALITY, max_size: tuple[int, int] | None = None
    ) -> JpegFrame | None:
        """The newest frame's JPEG if it was already made with these settings, else None.

        Reads the newest frame first; copies and encodes nothing.
        """
        self.read_latest()
        frame, made = self._latest, self._made
        if frame is None or made is None:
            return None
        key = (frame.sequence, frame.timestamp, quality, self._scale(frame, max_size))
        return made.done if made.key == key else None

    def _scale(self, frame: Frame, max_size: tuple[int, int] | None) -> int:
        fmt = self.format
        if fourcc_code(fmt.fourcc) in _MJPEG:
            return scale_for(fmt.width, fmt.height, max_size)
        return scale_for(frame.width, frame.height, max_size)

    def remember(self, job: JpegJob) -> None:
        """Keep a finished job's JPEG for repeated requests of the same frame."""
        if job.done is not None:
            self._made = job

    def jpeg(
        self,
        quality: int = DEFAULT_QUALITY,
        max_size: tuple[int, int] | None = None,
        timeout_s: float = 2.0,
    ) -> JpegFrame:
        """JPEG of the newest frame, waiting up to timeout_s if none has arrived yet.

        MJPEG frames are passed through (checked, Huffman tables added if missing) unless
        max_size asks for a smaller picture; quality applies to encoded pictures only.
        """
        deadline = time.monotonic() + timeout_s
        while (job := self.jpeg_job(quality, max_size, copy=False)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout(errno.ETIMEDOUT, f"no frame within {timeout_s} s", self.path)
            self.wait_readable(left)
        result = job.run()
        self.remember(job)
        return result

    # errors

    def _error(self, rc: int, *, close_if_gone: bool = False) -> Exception:
        err = error_from_code(rc, string(lib.cap_camera_error(self._cam)), self.path)
        if close_if_gone and isinstance(err, DeviceGone):
            self.close()
        return err


def _fraction(fps: float) -> tuple[int, int]:
    """Frames per second as (numerator, denominator): 30 -> (30, 1), 7.5 -> (15, 2)."""
    from fractions import Fraction

    f = Fraction(fps).limit_denominator(1001)
    return f.numerator, f.denominator


def _notify_closing(fd: int) -> None:
    """Wake Trio tasks waiting on fd before it is closed (no-op outside Trio)."""
    import sys

    trio = sys.modules.get("trio")
    if trio is None:
        return
    with contextlib.suppress(RuntimeError):  # not inside trio.run
        trio.lowlevel.notify_closing(fd)
