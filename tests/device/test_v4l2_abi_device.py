"""The kernel's V4L2 behaviour that camsvc relies on, pinned with raw ioctls from Python.

Each test states one thing the vivid driver does (see docs/testing.md, "vivid's behaviour");
the emulator must do the same, so these run in both lanes. Plain `os`, `fcntl`, `mmap` and
`select` calls, so in the emulator lane they go through the LD_PRELOAD device like any
program's calls would.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import select
import struct
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

# The ioctl numbers and helpers shared with the emulator's own ABI tests.
from tests.emulator.v4l2 import (
    BUF_FLAG_MAPPED,
    BUF_FLAG_TIMESTAMP_MASK,
    BUF_FLAG_TIMESTAMP_MONOTONIC,
    CAPTURE,
    CID_BRIGHTNESS,
    DQBUF,
    ENUM_FMT,
    G_CTRL,
    G_FMT,
    G_PARM,
    MEMORY_MMAP,
    QBUF,
    QUERYBUF,
    QUERYCTRL,
    REQBUFS,
    S_CTRL,
    S_FMT,
    S_PARM,
    STREAMOFF,
    STREAMON,
    fourcc,
    fourcc_text,
    frame_sizes,
)

pytestmark = pytest.mark.device


def set_fmt(fd: int, width: int, height: int, pixfmt: str) -> tuple[int, int, str, int]:
    """S_FMT; return the (width, height, fourcc, sizeimage) the driver chose."""
    buf = bytearray(208)
    struct.pack_into("<I", buf, 0, CAPTURE)
    struct.pack_into("<IIII", buf, 8, width, height, fourcc(pixfmt), 1)
    fcntl.ioctl(fd, S_FMT, buf)
    w, h, pf, _field, _bpl, size = struct.unpack_from("<IIIIII", buf, 8)
    return w, h, fourcc_text(pf), size


def get_fmt(fd: int) -> tuple[int, int, str]:
    """G_FMT; return (width, height, fourcc)."""
    buf = bytearray(208)
    struct.pack_into("<I", buf, 0, CAPTURE)
    fcntl.ioctl(fd, G_FMT, buf)
    w, h, pf = struct.unpack_from("<III", buf, 8)
    return w, h, fourcc_text(pf)


def interval(fd: int, num: int = 0, den: int = 0) -> tuple[int, int]:
    """S_PARM num/den seconds per frame when given, else G_PARM; return the interval."""
    buf = bytearray(204)
    struct.pack_into("<I", buf, 0, CAPTURE)
    if den:
        struct.pack_into("<II", buf, 12, num, den)
    fcntl.ioctl(fd, S_PARM if den else G_PARM, buf)
    return struct.unpack_from("<II", buf, 12)


def query_control(fd: int, cid: int) -> tuple[int, int, int]:
    """QUERYCTRL; return the control's (minimum, maximum, default)."""
    buf = bytearray(68)
    struct.pack_into("<I", buf, 0, cid)
    fcntl.ioctl(fd, QUERYCTRL, buf)
    return struct.unpack_from("<ii", buf, 40) + struct.unpack_from("<i", buf, 52)


def control(fd: int, cid: int, value: int | None = None) -> int:
    """S_CTRL value when given, else G_CTRL; return the value the driver reports."""
    buf = bytearray(struct.pack("<Ii", cid, value or 0))
    fcntl.ioctl(fd, G_CTRL if value is None else S_CTRL, buf)
    if value is not None:
        fcntl.ioctl(fd, G_CTRL, buf)
    return struct.unpack_from("<i", buf, 4)[0]


def formats(fd: int) -> list[str]:
    """The fourccs ENUM_FMT lists."""
    found = []
    for index in range(256):
        buf = bytearray(64)
        struct.pack_into("<II", buf, 0, index, CAPTURE)
        try:
            fcntl.ioctl(fd, ENUM_FMT, buf)
        except OSError as exc:
            assert exc.errno == errno.EINVAL
            return found
        found.append(fourcc_text(struct.unpack_from("<I", buf, 44)[0]))
    raise AssertionError("ENUM_FMT never ended with EINVAL")


def v4l2_buffer(index: int = 0) -> bytearray:
    buf = bytearray(88)
    struct.pack_into("<II", buf, 0, index, CAPTURE)
    struct.pack_into("<I", buf, 60, MEMORY_MMAP)
    return buf


def request_buffers(fd: int, count: int) -> int:
    buf = bytearray(20)
    struct.pack_into("<III", buf, 0, count, CAPTURE, MEMORY_MMAP)
    fcntl.ioctl(fd, REQBUFS, buf)
    return struct.unpack_from("<I", buf, 0)[0]


@contextmanager
def streaming(node: Path, width: int = 640, height: int = 480, count: int = 4):
    """Open node non-blocking, set YUYV width x height, map and queue buffers, STREAMON."""
    fd = os.open(node, os.O_RDWR | os.O_NONBLOCK)
    maps: list[mmap.mmap] = []
    try:
        set_fmt(fd, width, height, "YUYV")
        for index in range(request_buffers(fd, count)):
            buf = v4l2_buffer(index)
            fcntl.ioctl(fd, QUERYBUF, buf)
            offset, length = struct.unpack_from("<QI", buf, 64)
            maps.append(mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ, offset=offset))
            fcntl.ioctl(fd, QBUF, buf)
        fcntl.ioctl(fd, STREAMON, struct.pack("<I", CAPTURE))
        yield fd, maps
    finally:
        with suppress(OSError):
            fcntl.ioctl(fd, STREAMOFF, struct.pack("<I", CAPTURE))
        for m in maps:
            m.close()
        os.close(fd)


def dequeue(fd: int, timeout: float = 10.0) -> dict[str, int | float]:
    """Wait for a frame with poll, DQBUF it, requeue it, and return its fields."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "no frame within the timeout"
        poller.poll(remaining * 1000)
        buf = v4l2_buffer()
        try:
            fcntl.ioctl(fd, DQBUF, buf)
        except BlockingIOError:
            continue
        index, _type, used, flags = struct.unpack_from("<IIII", buf, 0)
        sec, usec = struct.unpack_from("<qq", buf, 24)
        sequence = struct.unpack_from("<I", buf, 56)[0]
        fcntl.ioctl(fd, QBUF, buf)
        return {
            "index": index,
            "bytesused": used,
            "flags": flags,
            "timestamp": sec + usec / 1e6,
            "sequence": sequence,
        }


def test_yuyv_is_offered_with_discrete_sizes_including_640x480(lane):
    fd = os.open(lane.nodes()[0], os.O_RDWR)
    try:
        assert "YUYV" in formats(fd)
        assert (640, 480) in frame_sizes(fd, "YUYV")
    finally:
        os.close(fd)


def test_s_fmt_snaps_an_unoffered_size_to_an_offered_one(lane):
    fd = os.open(lane.nodes()[0], os.O_RDWR)
    try:
        w, h, pixfmt, size = set_fmt(fd, 641, 479, "YUYV")
        assert pixfmt == "YUYV"
        assert (w, h) in frame_sizes(fd, "YUYV")
        assert (w, h) == (640, 480), "the nearest offered size"
        assert size == w * h * 2
    finally:
        os.close(fd)


def test_s_fmt_with_an_unoffered_fourcc_picks_an_offered_format(lane):
    fd = os.open(lane.nodes()[0], os.O_RDWR)
    try:
        offered = formats(fd)
        # vivid offers no MJPEG; an emulated node might: pick a fourcc neither offers.
        _w, _h, pixfmt, _size = set_fmt(fd, 640, 480, "XXXX")
        assert pixfmt in offered, "S_FMT never fails on a fourcc: it substitutes one"
    finally:
        os.close(fd)


def test_format_persists_across_opens_and_a_replug_restores_the_defaults(lane):
    node = lane.nodes()[0]

    def read_settings() -> tuple[tuple[int, int, str], tuple[int, int]]:
        fd = os.open(node, os.O_RDWR)
        try:
            return get_fmt(fd), interval(fd)
        finally:
            os.close(fd)

    lane.unplug(node)
    lane.replug(node)
    defaults = read_settings()
    fd = os.open(node, os.O_RDWR)
    try:
        # Something other than the defaults, in a size every lane offers.
        set_fmt(fd, 320, 180, "NV12" if defaults[0][2] != "NV12" else "YUYV")
        chosen = get_fmt(fd)
        assert chosen != defaults[0]
        rate = interval(fd, 1, 10)
    finally:
        os.close(fd)
    # The device keeps its format and interval when nobody has it open.
    assert read_settings() == (chosen, rate)
    lane.unplug(node)
    lane.replug(node)
    assert read_settings() == defaults, "a replugged device starts from its defaults"


def test_integer_control_writes_clamp_to_the_range_and_persist(lane):
    node = lane.nodes()[0]
    fd = os.open(node, os.O_RDWR)
    try:
        low, high, default = query_control(fd, CID_BRIGHTNESS)
        assert low <= default <= high
        assert control(fd, CID_BRIGHTNESS) == default, "a fresh device has the default"
        assert control(fd, CID_BRIGHTNESS, high + 1000) == high, "clamped, not ERANGE"
        assert control(fd, CID_BRIGHTNESS, low - 1000) == low
        control(fd, CID_BRIGHTNESS, high)
    finally:
        os.close(fd)
    fd = os.open(node, os.O_RDWR)
    try:
        assert control(fd, CID_BRIGHTNESS) == high, "the device keeps it across opens"
    finally:
        os.close(fd)


def test_format_changes_are_refused_with_ebusy_while_streaming(lane):
    node = lane.nodes()[0]
    with streaming(node) as (fd, _maps):
        other = os.open(node, os.O_RDWR | os.O_NONBLOCK)
        try:
            for who in (fd, other):
                with pytest.raises(OSError) as exc:
                    set_fmt(who, 320, 180, "YUYV")
                assert exc.value.errno == errno.EBUSY
            with pytest.raises(OSError) as exc:
                request_buffers(other, 2)
            assert exc.value.errno == errno.EBUSY
        finally:
            os.close(other)


def test_frames_carry_monotonic_timestamps_and_rising_sequence(lane):
    with streaming(lane.nodes()[0]) as (fd, _maps):
        frames = [dequeue(fd) for _ in range(3)]
    now = time.clock_gettime(time.CLOCK_MONOTONIC)
    for frame in frames:
        assert frame["bytesused"] == 640 * 480 * 2
        assert frame["flags"] & BUF_FLAG_MAPPED
        assert frame["flags"] & BUF_FLAG_TIMESTAMP_MASK == BUF_FLAG_TIMESTAMP_MONOTONIC
        # CLOCK_MONOTONIC, but vivid stamps a frame with the time its interval ends, which
        # can be up to one interval (at most 1 s) later than the DQBUF that returns it.
        assert now - 10 < frame["timestamp"] <= now + 1.0, (frame, now)
    sequences = [f["sequence"] for f in frames]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    stamps = [f["timestamp"] for f in frames]
    assert stamps == sorted(stamps)


def test_unplug_while_streaming_gives_pollerr_and_enodev(lane):
    node = lane.nodes()[0]
    replugged = False
    try:
        with streaming(node) as (fd, maps):
            dequeue(fd)
            lane.unplug(node)
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            events = dict(poller.poll(2000)).get(fd, 0)
            assert events & select.POLLERR, hex(events)
            assert events & select.POLLHUP, hex(events)
            with pytest.raises(OSError) as exc:
                fcntl.ioctl(fd, DQBUF, v4l2_buffer())
            assert exc.value.errno == errno.ENODEV
            with pytest.raises(OSError) as exc:
                set_fmt(fd, 640, 480, "YUYV")
            assert exc.value.errno == errno.ENODEV
            assert len(maps[0][:16]) == 16, "mapped buffers stay readable until unmapped"
            with pytest.raises(FileNotFoundError):
                os.open(node, os.O_RDWR)
        # Every fd of the old node is closed: the node comes back under its name.
        replugged = True
        lane.replug(node)
        with streaming(node) as (fd, _maps):
            assert dequeue(fd)["bytesused"] == 640 * 480 * 2
    finally:
        if not replugged:
            lane.replug(node)
