"""The capture module on the lane's device: the emulator on the host, vivid in the guest.

Kept few and small: vivid runs at a few frames per second under TCG. The tests accept what
the driver chooses (format, size, rate) and bound every wait.
"""

from __future__ import annotations

import io

import pytest
import trio
from PIL import Image

from camsvc.capture import Camera, DeviceBusy, DeviceGone, frames, list_devices, snapshot

pytestmark = pytest.mark.device

#: Upper bound for one wait on the device (vivid under TCG is slow, the host may be busy).
WAIT_S = 30.0
USABLE = {"MJPG", "JPEG", "YUYV", "NV12"}


def test_every_node_is_listed_with_formats(lane):
    """list_devices() finds every capture node of the lane, each with sizes and rates."""
    nodes = lane.nodes()
    assert nodes, f"the {lane.name} lane has no device nodes"
    found = {info.path: info for info in list_devices(lane.device_dir)}
    for node in nodes:
        info = found.get(str(node))
        assert info is not None, f"{node} missing from {sorted(found)}"
        assert info.driver and info.card
        assert {f.fourcc for f in info.formats} & USABLE
        assert all(f.sizes for f in info.formats if f.fourcc in USABLE)


async def test_frames_then_a_snapshot(lane):
    """Frames arrive in order with rising timestamps, and the snapshot is a real picture."""
    with Camera(lane.nodes()[0]) as cam:
        fmt = cam.open(640, 480)
        assert fmt.fourcc in USABLE and fmt.width > 0 and fmt.height > 0
        seen = []
        with trio.fail_after(WAIT_S):
            async for frame in frames(cam):
                seen.append(frame)
                if len(seen) == 2:
                    break
            jpeg = await snapshot(cam, quality=80)
        assert seen[1].sequence > seen[0].sequence
        assert seen[1].timestamp > seen[0].timestamp
        assert jpeg.sequence >= seen[1].sequence
        img = Image.open(io.BytesIO(jpeg.data))
        img.load()
        assert img.size == (fmt.width, fmt.height) == (jpeg.width, jpeg.height)
        low, high = img.convert("L").getextrema()
        assert low != high, "the snapshot is one flat colour"


def test_second_owner_is_busy(lane):
    """While one Camera streams, a second open of the node raises DeviceBusy."""
    node = lane.nodes()[0]
    with Camera(node) as first:
        first.open()
        with pytest.raises(DeviceBusy):
            Camera(node).open()
    with Camera(node) as again:
        again.open()


async def test_unplug_mid_stream_then_replug(lane):
    """Unplugging wakes the waiting reader with DeviceGone; after replug the node works."""
    node = lane.nodes()[0]
    cam = Camera(node)
    try:
        cam.open()
        with trio.fail_after(WAIT_S):
            async for _frame in frames(cam):
                break
            lane.unplug(node)
            with pytest.raises(DeviceGone):
                async for _frame in frames(cam):
                    pass
        assert not cam.is_open
    finally:
        cam.close()
        lane.replug(node)
    with Camera(node) as cam, trio.fail_after(WAIT_S):
        cam.open()
        async for _frame in frames(cam):
            break
