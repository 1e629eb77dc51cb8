"""The service on the lane's devices: discovery, status and hot-plug through the API.

Runs in both lanes (emulated nodes here, vivid in the QEMU guest).
"""

from __future__ import annotations

import pytest
import trio

from tests.fixtures.service import until

pytestmark = pytest.mark.device


def _device_id(path) -> str:
    return f"camera{int(path.name.removeprefix('video'))}"


async def _until(predicate, timeout_s: float = 30) -> None:
    await until(predicate, timeout_s, cushion_s=0.05)


async def test_discovery_and_status(lane, start_service, connect):
    """Every capture node of the lane is listed CONNECTED; get_camera_status answers for one."""
    svc = await start_service(camera={"device_dir": str(lane.device_dir)})
    client = await connect(svc, "viewer")
    listed = await client.call("get_camera_list")
    expected = [_device_id(p) for p in lane.nodes()]
    assert len(expected) >= 2
    assert [c["device"] for c in listed["cameras"]] == expected
    assert all(c["status"] == "CONNECTED" for c in listed["cameras"])
    status = await client.call("get_camera_status", {"device": expected[0]})
    assert status["status"] == "CONNECTED"
    assert status["capabilities"]["formats"], status
    caps = await client.call("get_camera_capabilities", {"device": expected[0]})
    assert caps["validation_status"] == "CONFIRMED" and caps["modes"]


async def test_capture_then_unplug(lane, start_service, connect):
    """A running pump delivers frames; unplugging the device marks the camera DISCONNECTED."""
    svc = await start_service(camera={"device_dir": str(lane.device_dir), "poll_interval": 0.5})
    node = lane.nodes()[0]
    entry = svc.app.cameras.get(_device_id(node))
    async with entry.supervisor.use():
        with trio.fail_after(30):
            frame = await entry.supervisor.wait_frame()
        assert frame.width > 0 and frame.height > 0
        await trio.to_thread.run_sync(lane.unplug, node)
        try:
            await _until(lambda: entry.status == "DISCONNECTED")
        finally:
            await trio.to_thread.run_sync(lane.replug, node)
    await _until(lambda: svc.app.cameras.get(_device_id(node)).status == "CONNECTED")
