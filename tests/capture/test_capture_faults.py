"""Faults: a busy device, ENOSPC on STREAMON, stalls, broken frames, EIO and unplug."""

from __future__ import annotations

import subprocess

import pytest
import trio
import trio.testing

from camsvc.capture import (
    Camera,
    CaptureError,
    DeviceBusy,
    DeviceGone,
    NoSpace,
    wait_frame,
)
from tests.capture.helpers import WAIT_S, decode, pixel_sequence, wait_for_sequence


def test_concurrent_open_is_busy(node):
    """A second owner gets DeviceBusy while the first streams, and the device after."""
    with Camera(node.path) as first:
        first.open()
        second = Camera(node.path)
        with pytest.raises(DeviceBusy) as err:
            second.open()
        assert err.value.errno == 16 and err.value.path == str(node.path)
        assert isinstance(err.value, OSError)
    second.open()
    second.close()


def test_ebusy_fault(node):
    """A device that says EBUSY is reported as DeviceBusy."""
    node.inject("ebusy")
    with pytest.raises(DeviceBusy):
        Camera(node.path).open()
    node.inject(None)
    with Camera(node.path) as cam:
        cam.open()


def test_enospc_on_streamon(node):
    """ENOSPC from STREAMON (no USB bandwidth) is NoSpace, and open unwinds cleanly."""
    node.inject("enospc_streamon")
    cam = Camera(node.path)
    with pytest.raises(NoSpace) as err:
        cam.open()
    assert "STREAMON" in str(err.value)
    assert not cam.is_open
    node.inject(None)
    cam.open()  # nothing was left held: buffers and ownership were released
    cam.close()


def test_stall_then_recover(node):
    """A stalled camera delivers nothing (the fd stays quiet), then resumes."""
    with Camera(node.path) as cam:
        cam.open()
        node.inject("stall")
        node.tick(2)
        assert not cam.wait_readable(0.3)
        assert cam.read_latest() is None
        node.inject(None)
        node.tick(1)
        frame = wait_for_sequence(cam, 0)
        assert pixel_sequence(cam.jpeg().data) == frame.sequence


@pytest.mark.parametrize("fault", ["corrupt", "truncated"])
@pytest.mark.parametrize("fourcc", ["MJPG", "YUYV"])
def test_broken_frames_are_dropped(node, fault, fourcc):
    """Corrupt (error-flagged) and truncated frames never become the newest frame."""
    with Camera(node.path) as cam:
        cam.open(640, 480, fourcc=fourcc)
        node.tick(1)
        good = wait_for_sequence(cam, 0)
        node.inject(fault)
        node.tick(2)
        while cam.stats().dropped < 2:
            assert cam.wait_readable(WAIT_S), "the broken frames never arrived"
            assert cam.read_latest() is None
        jpeg = cam.jpeg()
        assert jpeg.sequence == good.sequence
        assert pixel_sequence(jpeg.data) == good.sequence
        node.inject(None)
        node.tick(1)
        assert wait_for_sequence(cam, 3).sequence == 3


def test_mjpeg_without_huffman_tables_is_fixed(node, tmp_path):
    """A DHT-less MJPEG frame becomes a JPEG that both Pillow and ffmpeg decode."""
    node.inject("no_dht")
    with Camera(node.path) as cam:
        cam.open(640, 480, fourcc="MJPG")
        node.tick(1)
        wait_for_sequence(cam, 0)
        jpeg = cam.jpeg()
    assert b"\xff\xc4" in jpeg.data
    assert decode(jpeg.data).size == (640, 480)
    assert pixel_sequence(jpeg.data) == 0
    out = tmp_path / "fixed.jpg"
    out.write_bytes(jpeg.data)
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(out), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_eio_is_device_gone(node):
    """EIO while streaming means the device failed: DeviceGone, and the camera is closed."""
    with Camera(node.path) as cam:
        cam.open()
        node.tick(1)
        wait_for_sequence(cam, 0)
        node.inject("eio")
        with pytest.raises(DeviceGone) as err:
            cam.read_latest()  # the next dequeue fails, frame or not
        assert err.value.errno == 5
        assert not cam.is_open


def test_unplug_mid_stream(node):
    """Unplugging while streaming raises DeviceGone; after replug the camera opens again."""
    with Camera(node.path) as cam:
        cam.open(640, 480, fourcc="YUYV")
        node.tick(1)
        wait_for_sequence(cam, 0)
        node.unplug()
        with pytest.raises(DeviceGone):
            while True:
                assert cam.wait_readable(WAIT_S)
                cam.read_latest()
        assert not cam.is_open
    with pytest.raises(CaptureError):
        Camera(node.path).open()
    node.plug()
    with Camera(node.path) as cam:
        cam.open()
        node.tick(1)
        assert wait_for_sequence(cam, 0).sequence == 0


async def test_unplug_wakes_a_trio_waiter(node):
    """A task waiting for a frame learns about the unplug at once, as DeviceGone."""
    with Camera(node.path) as cam:
        cam.open()
        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                failures = []

                async def waiter() -> None:
                    try:
                        await wait_frame(cam)
                    except DeviceGone as exc:
                        failures.append(exc)

                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                node.unplug()
        assert len(failures) == 1
