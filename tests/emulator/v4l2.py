"""Raw V4L2 calls from Python for the emulator's own tests (plain os/fcntl/mmap/select).

Only what the tests need, with the x86_64 layouts of <linux/videodev2.h>. Everything
goes through libc, so in a preloaded process it reaches the emulated device exactly as
a C program's calls would.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import select
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

CAPTURE: Final = 1
META_CAPTURE: Final = 13
MEMORY_MMAP: Final = 1

CAP_VIDEO_CAPTURE: Final = 0x00000001
CAP_META_CAPTURE: Final = 0x00800000
CAP_STREAMING: Final = 0x04000000
CAP_DEVICE_CAPS: Final = 0x80000000

BUF_FLAG_MAPPED: Final = 0x1
BUF_FLAG_QUEUED: Final = 0x2
BUF_FLAG_DONE: Final = 0x4
BUF_FLAG_ERROR: Final = 0x40
BUF_FLAG_TIMESTAMP_MASK: Final = 0xE000
BUF_FLAG_TIMESTAMP_MONOTONIC: Final = 0x2000

CID_BRIGHTNESS: Final = 0x00980900
CID_POWER_LINE_FREQUENCY: Final = 0x00980918
CTRL_FLAG_NEXT_CTRL: Final = 0x80000000

#: Bound on every wait for a frame; generous for a loaded 2-core box.
WAIT_S: Final = 10.0


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


QUERYCAP: Final = _ioc(2, 0, 104)
ENUM_FMT: Final = _ioc(3, 2, 64)
G_FMT: Final = _ioc(3, 4, 208)
S_FMT: Final = _ioc(3, 5, 208)
REQBUFS: Final = _ioc(3, 8, 20)
QUERYBUF: Final = _ioc(3, 9, 88)
QBUF: Final = _ioc(3, 15, 88)
DQBUF: Final = _ioc(3, 17, 88)
STREAMON: Final = _ioc(1, 18, 4)
STREAMOFF: Final = _ioc(1, 19, 4)
G_PARM: Final = _ioc(3, 21, 204)
S_PARM: Final = _ioc(3, 22, 204)
G_STD: Final = _ioc(2, 23, 8)
ENUMSTD: Final = _ioc(3, 25, 72)
ENUMINPUT: Final = _ioc(3, 26, 80)
G_CTRL: Final = _ioc(3, 27, 8)
S_CTRL: Final = _ioc(3, 28, 8)
QUERYCTRL: Final = _ioc(3, 36, 68)
QUERYMENU: Final = _ioc(3, 37, 44)
G_INPUT: Final = _ioc(2, 38, 4)
CROPCAP: Final = _ioc(3, 58, 44)
ENUM_FRAMESIZES: Final = _ioc(3, 74, 44)
ENUM_FRAMEINTERVALS: Final = _ioc(3, 75, 52)
G_SELECTION: Final = _ioc(3, 94, 64)
G_PRIORITY: Final = _ioc(2, 67, 4)
S_PRIORITY: Final = _ioc(1, 68, 4)
DQEVENT: Final = _ioc(2, 89, 136)
SUBSCRIBE_EVENT: Final = _ioc(1, 90, 32)
EVENT_CTRL: Final = 3
EVENT_SUB_FL_SEND_INITIAL: Final = 0x1
UNKNOWN_IOCTL: Final = _ioc(3, 250, 16)


def fourcc(text: str) -> int:
    """The integer of a four-character code."""
    return struct.unpack("<I", text.encode())[0]


def fourcc_text(value: int) -> str:
    """The four characters of a code."""
    return struct.pack("<I", value).decode(errors="replace")


def ioctl_errno(fd: int, request: int, arg: bytes | bytearray) -> int:
    """Run an ioctl expected to fail and return its errno (0 if it succeeded)."""
    try:
        fcntl.ioctl(fd, request, arg if isinstance(arg, bytearray) else bytearray(arg))
    except OSError as exc:
        return exc.errno or 0
    return 0


@dataclass(frozen=True)
class Capability:
    """VIDIOC_QUERYCAP."""

    driver: str
    card: str
    bus_info: str
    capabilities: int
    device_caps: int


def querycap(fd: int) -> Capability:
    """VIDIOC_QUERYCAP."""
    buf = bytearray(104)
    fcntl.ioctl(fd, QUERYCAP, buf)
    driver, card, bus, _version, caps, dcaps = struct.unpack_from("<16s32s32sIII", buf)

    def text(raw: bytes) -> str:
        return raw.split(b"\0", 1)[0].decode()

    return Capability(text(driver), text(card), text(bus), caps, dcaps)


def formats(fd: int, buf_type: int = CAPTURE) -> list[tuple[str, str]]:
    """(fourcc, description) of every format ENUM_FMT lists."""
    found = []
    for index in range(64):
        buf = bytearray(64)
        struct.pack_into("<II", buf, 0, index, buf_type)
        try:
            fcntl.ioctl(fd, ENUM_FMT, buf)
        except OSError as exc:
            assert exc.errno == errno.EINVAL
            return found
        desc = bytes(buf[12:44]).split(b"\0", 1)[0].decode()
        found.append((fourcc_text(struct.unpack_from("<I", buf, 44)[0]), desc))
    raise AssertionError("ENUM_FMT never ended")


def frame_sizes(fd: int, pixfmt: str) -> list[tuple[int, int]]:
    """Discrete sizes of pixfmt."""
    sizes = []
    for index in range(64):
        buf = bytearray(44)
        struct.pack_into("<II", buf, 0, index, fourcc(pixfmt))
        try:
            fcntl.ioctl(fd, ENUM_FRAMESIZES, buf)
        except OSError as exc:
            assert exc.errno == errno.EINVAL
            return sizes
        kind, width, height = struct.unpack_from("<III", buf, 8)
        assert kind == 1
        sizes.append((width, height))
    raise AssertionError("ENUM_FRAMESIZES never ended")


def frame_rates(fd: int, pixfmt: str, width: int, height: int) -> list[tuple[int, int]]:
    """Discrete intervals (numerator, denominator) of pixfmt at width x height."""
    rates = []
    for index in range(64):
        buf = bytearray(52)
        struct.pack_into("<IIII", buf, 0, index, fourcc(pixfmt), width, height)
        try:
            fcntl.ioctl(fd, ENUM_FRAMEINTERVALS, buf)
        except OSError as exc:
            assert exc.errno == errno.EINVAL
            return rates
        kind, num, den = struct.unpack_from("<III", buf, 16)
        assert kind == 1
        rates.append((num, den))
    raise AssertionError("ENUM_FRAMEINTERVALS never ended")


@dataclass(frozen=True)
class PixFormat:
    """The v4l2_pix_format fields the tests look at."""

    width: int
    height: int
    pixfmt: str
    bytesperline: int
    sizeimage: int


def _pix(buf: bytearray) -> PixFormat:
    w, h, pf, _field, bpl, size = struct.unpack_from("<IIIIII", buf, 8)
    return PixFormat(w, h, fourcc_text(pf), bpl, size)


def get_fmt(fd: int) -> PixFormat:
    """VIDIOC_G_FMT (video capture)."""
    buf = bytearray(208)
    struct.pack_into("<I", buf, 0, CAPTURE)
    fcntl.ioctl(fd, G_FMT, buf)
    return _pix(buf)


def set_fmt(fd: int, width: int, height: int, pixfmt: str) -> PixFormat:
    """VIDIOC_S_FMT; returns what the device chose."""
    buf = bytearray(208)
    struct.pack_into("<I", buf, 0, CAPTURE)
    struct.pack_into("<IIII", buf, 8, width, height, fourcc(pixfmt), 1)
    fcntl.ioctl(fd, S_FMT, buf)
    return _pix(buf)


def set_rate(fd: int, numerator: int, denominator: int) -> tuple[int, int]:
    """VIDIOC_S_PARM time per frame; returns the interval the device chose."""
    buf = bytearray(204)
    struct.pack_into("<III", buf, 0, CAPTURE, 0x1000, 0)
    struct.pack_into("<II", buf, 12, numerator, denominator)
    fcntl.ioctl(fd, S_PARM, buf)
    return struct.unpack_from("<II", buf, 12)


def request_buffers(fd: int, count: int) -> int:
    """VIDIOC_REQBUFS (mmap); returns the count granted."""
    buf = bytearray(20)
    struct.pack_into("<III", buf, 0, count, CAPTURE, MEMORY_MMAP)
    fcntl.ioctl(fd, REQBUFS, buf)
    return struct.unpack_from("<I", buf, 0)[0]


def v4l2_buffer(index: int = 0) -> bytearray:
    """A v4l2_buffer for an mmap capture buffer."""
    buf = bytearray(88)
    struct.pack_into("<II", buf, 0, index, CAPTURE)
    struct.pack_into("<I", buf, 60, MEMORY_MMAP)
    return buf


@dataclass(frozen=True)
class Frame:
    """One dequeued buffer: its fields and a copy of its payload."""

    index: int
    bytesused: int
    flags: int
    timestamp: float
    sequence: int
    data: bytes


class Stream:
    """An open, mapped, queued and streaming capture fd."""

    def __init__(self, fd: int, maps: list[mmap.mmap]) -> None:
        self.fd = fd
        self.maps = maps

    def wait_readable(self, timeout: float = WAIT_S) -> bool:
        """Poll the fd for POLLIN; True when it became readable within timeout."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))

    def try_dequeue(self, *, requeue: bool = True) -> Frame | None:
        """Non-blocking DQBUF (and QBUF back unless told not to); None when no frame."""
        buf = v4l2_buffer()
        try:
            fcntl.ioctl(self.fd, DQBUF, buf)
        except BlockingIOError:
            return None
        index, _type, used, flags = struct.unpack_from("<IIII", buf, 0)
        sec, usec = struct.unpack_from("<qq", buf, 24)
        sequence = struct.unpack_from("<I", buf, 56)[0]
        data = bytes(self.maps[index][:used])
        if requeue:
            fcntl.ioctl(self.fd, QBUF, buf)
        return Frame(index, used, flags, sec + usec / 1e6, sequence, data)

    def queue(self, index: int) -> None:
        """QBUF buffer index."""
        fcntl.ioctl(self.fd, QBUF, v4l2_buffer(index))

    def dequeue(self, timeout: float = WAIT_S, *, requeue: bool = True) -> Frame:
        """Wait (poll) for the next frame and dequeue it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no frame within the timeout"
            self.wait_readable(remaining)
            frame = self.try_dequeue(requeue=requeue)
            if frame is not None:
                return frame


@contextmanager
def open_node(node: Path, flags: int = os.O_RDWR | os.O_NONBLOCK) -> Iterator[int]:
    """An fd on node, closed afterwards."""
    fd = os.open(node, flags)
    try:
        yield fd
    finally:
        with suppress(OSError):
            os.close(fd)


@contextmanager
def streaming(
    node: Path, width: int = 640, height: int = 480, pixfmt: str = "YUYV", count: int = 4
) -> Iterator[Stream]:
    """Open node non-blocking, set the format, map and queue `count` buffers, STREAMON."""
    with open_node(node) as fd:
        maps: list[mmap.mmap] = []
        try:
            set_fmt(fd, width, height, pixfmt)
            for index in range(request_buffers(fd, count)):
                buf = v4l2_buffer(index)
                fcntl.ioctl(fd, QUERYBUF, buf)
                offset, length = struct.unpack_from("<QI", buf, 64)
                maps.append(mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ, offset=offset))
                fcntl.ioctl(fd, QBUF, buf)
            fcntl.ioctl(fd, STREAMON, struct.pack("<I", CAPTURE))
            yield Stream(fd, maps)
        finally:
            with suppress(OSError):
                fcntl.ioctl(fd, STREAMOFF, struct.pack("<I", CAPTURE))
            for m in maps:
                m.close()


def to_image(frame: Frame, pixfmt: str, width: int, height: int) -> Image.Image:
    """Decode a frame to an RGB image (luma only for the raw formats: enough for tests)."""
    if pixfmt == "MJPG":
        import io

        with Image.open(io.BytesIO(frame.data)) as img:
            img.load()
            return img.convert("RGB")
    if pixfmt == "YUYV":
        luma = frame.data[0 : width * height * 2 : 2]
    elif pixfmt == "NV12":
        luma = frame.data[: width * height]
    else:
        raise ValueError(pixfmt)
    return Image.frombytes("L", (width, height), luma).convert("RGB")
