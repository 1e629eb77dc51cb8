"""Cameras through the API, on emulated devices: discovery, hot-plug, status, capabilities."""

from __future__ import annotations

import pytest
import structlog
import structlog.testing
import trio

from camsvc.capture import DeviceGone
from tests.fixtures.service import until


async def _until(predicate, timeout_s: float = 10) -> None:
    await until(predicate, timeout_s, cushion_s=0.01)


class TestDiscovery:
    """Initial scan and hot-plug."""

    @pytest.mark.parametrize("count", [0, 1, 16])
    async def test_start_with_n_cameras(self, cams, start_cameras_service, connect, count):
        """The first scan lists every emulated camera, CONNECTED, by device number."""
        for i in range(count):
            cams(i)
        svc = await start_cameras_service()
        client = await connect(svc, "viewer")
        result = await client.call("get_camera_list")
        assert result["total"] == result["connected"] == count
        assert [c["device"] for c in result["cameras"]] == [f"camera{i}" for i in range(count)]
        for cam in result["cameras"]:
            assert cam["status"] == "CONNECTED"
            assert cam["name"] == "Emulated Camera"
            assert cam["resolution"] == "1920x1080" and cam["fps"] == 60
            assert cam["recording"] is False and cam["snapshot_ready"] is False
            assert cam["streams"]["rtsp"] == f"rtsp://127.0.0.1:8554/{cam['device']}"
            assert cam["streams"]["webrtc"] == f"http://127.0.0.1:8889/{cam['device']}/whep"
            assert cam["streams"]["hls"] == f"http://127.0.0.1:8888/{cam['device']}/index.m3u8"

    async def test_non_capture_node_ignored(self, cams, start_cameras_service, connect):
        """A metadata node is not a camera."""
        cams(0)
        cams(1, kind="metadata")
        svc = await start_cameras_service()
        client = await connect(svc, "viewer")
        result = await client.call("get_camera_list")
        assert [c["device"] for c in result["cameras"]] == ["camera0"]

    async def test_node_that_cannot_be_opened_is_error(
        self, emu_dir, cams, start_cameras_service, connect
    ):
        """A node present but not openable is listed as ERROR with the reason, and recovers."""
        (emu_dir / "video6").mkdir()  # open() fails with EISDIR, as a broken node would
        svc = await start_cameras_service()
        client = await connect(svc, "viewer")
        listed = await client.call("get_camera_list")
        assert [(c["device"], c["status"]) for c in listed["cameras"]] == [("camera6", "ERROR")]
        assert listed["connected"] == 0
        status = await client.call("get_camera_status", {"device": "camera6"})
        assert status["status"] == "ERROR" and "EISDIR" in status["error"]
        await client.call("subscribe_events", {"topics": ["camera.status_change"]})
        (emu_dir / "video6").rmdir()
        cams(6)
        await _until(lambda: svc.app.cameras.get("camera6").status == "CONNECTED")
        change = await client.recv()
        while change.get("method") != "event":
            change = await client.recv()
        assert change["params"]["data"]["old_status"] in ("ERROR", "DISCONNECTED")

    async def test_device_range(self, cams, start_cameras_service, connect):
        """Nodes outside camera.device_range are not cameras."""
        cams(0)
        cams(5)
        svc = await start_cameras_service(camera={"device_range": [1, 9]})
        client = await connect(svc, "viewer")
        assert [c["device"] for c in (await client.call("get_camera_list"))["cameras"]] == [
            "camera5"
        ]

    async def test_plug_unplug_notifications(self, cams, start_cameras_service, connect):
        """Each client sees exactly one CONNECTED and one DISCONNECTED per change, in order."""
        svc = await start_cameras_service()
        clients = [await connect(svc, "viewer") for _ in range(3)]
        for c in clients:
            await c.call(
                "subscribe_events", {"topics": ["camera.connected", "camera.disconnected"]}
            )
        cam = cams(3)
        await _until(lambda: svc.app.cameras.get("camera3") is not None)
        cam.unplug()
        await _until(lambda: svc.app.cameras.get("camera3").status == "DISCONNECTED")
        for c in clients:
            got = [await c.recv() for _ in range(4)]
            kinds = [(m["method"], m["params"].get("status") or m["params"]["topic"]) for m in got]
            assert kinds == [
                ("event", "camera.connected"),
                ("camera_status_update", "CONNECTED"),
                ("event", "camera.disconnected"),
                ("camera_status_update", "DISCONNECTED"),
            ]
            update = got[1]["params"]
            assert update["device"] == "camera3" and update["resolution"] == "1920x1080"
            assert set(update) == {"device", "status", "name", "resolution", "fps", "streams"}
            assert got[0]["params"]["data"]["device_path"].endswith("/video3")
            # Nothing else arrived before the reply to this request.
            assert await c.call("ping") == "pong"
            assert not c.pending

    async def test_disconnected_kept_then_forgotten(
        self, cams, start_cameras_service, connect, mock_clock
    ):
        """A DISCONNECTED camera stays listed for forget_after seconds, then is not found."""
        cam = cams(2)
        svc = await start_cameras_service(camera={"forget_after": 60})
        client = await connect(svc, "viewer")
        cam.unplug()
        await _until(lambda: svc.app.cameras.get("camera2").status == "DISCONNECTED")
        status = await client.call("get_camera_status", {"device": "camera2"})
        assert status["status"] == "DISCONNECTED" and status["metrics"]["uptime"] == 0
        caps = await client.call("get_camera_capabilities", {"device": "camera2"})
        assert caps["validation_status"] == "DISCONNECTED" and caps["formats"]
        mock_clock.jump(59)
        assert (await client.call("get_camera_list"))["total"] == 1
        mock_clock.jump(2)
        assert (await client.call("get_camera_list"))["total"] == 0
        error = await client.error("get_camera_status", {"device": "camera2"})
        assert error["code"] == -32010


class TestQueries:
    """get_camera_status, get_camera_capabilities, get_system_status and their errors."""

    async def test_capabilities(self, cams, start_cameras_service, connect):
        """Formats, sizes largest first, rates highest first, and every mode."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "viewer")
        caps = await client.call("get_camera_capabilities", {"device": "camera0"})
        assert caps["device"] == "camera0"
        assert caps["formats"] == ["MJPG", "YUYV", "NV12"]
        assert caps["resolutions"] == ["1920x1080", "1280x720", "640x480"]
        assert caps["fps_options"] == caps["frame_rates"] == [60, 30, 15]
        assert caps["validation_status"] == "CONFIRMED"
        assert len(caps["modes"]) == 9
        assert {"format": "YUYV", "width": 640, "height": 480, "fps": [60, 30, 15]} in caps["modes"]

    async def test_status_metrics_while_capturing(self, cams, start_cameras_service, connect):
        """While the pump runs, frames are counted and snapshot_ready is true."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "viewer")
        sup = svc.app.cameras.get("camera0").supervisor
        async with sup.use():
            first = await sup.wait_frame()
            await sup.wait_frame(first.sequence)
            status = await client.call("get_camera_status", {"device": "camera0"})
        assert status["snapshot_ready"] is True
        assert status["metrics"]["frames_captured"] >= 2
        assert status["metrics"]["uptime"] > 0
        assert status["capabilities"]["formats"] == ["MJPG", "YUYV", "NV12"]
        assert set(status["metrics"]) == {
            "bytes_sent",
            "readers",
            "uptime",
            "frames_captured",
            "frames_dropped",
            "fps_measured",
        }

    @pytest.mark.parametrize("method", ["get_camera_status", "get_camera_capabilities"])
    @pytest.mark.parametrize("device", ["foo", "/dev/video0", "camera", "CAMERA1", "camera-1", ""])
    async def test_bad_device_id(self, service, connect, method, device):
        """Malformed ids are -32602 invalid_device."""
        client = await connect(service, "viewer")
        error = await client.error(method, {"device": device})
        assert error["code"] == -32602 and error["data"]["reason"] == "invalid_device"
        assert error["data"]["param"] == "device"

    @pytest.mark.parametrize("method", ["get_camera_status", "get_camera_capabilities"])
    @pytest.mark.parametrize("device", ["camera7", "camera01", "ext_front"])
    async def test_unknown_camera(self, service, connect, method, device):
        """Unknown, leading-zero and ext_ ids are -32010 Camera not found."""
        client = await connect(service, "viewer")
        error = await client.error(method, {"device": device})
        assert error["code"] == -32010 and error["message"] == "Camera not found"
        assert error["data"]["reason"] == "camera_not_found"

    async def test_missing_device(self, service, connect):
        """No device param is -32602 missing_param."""
        client = await connect(service, "viewer")
        error = await client.error("get_camera_status", {})
        assert error["data"]["reason"] == "missing_param"

    async def test_system_status(self, cams, start_cameras_service, connect):
        """After the first scan: ready, with the connected cameras."""
        cams(0)
        cams(4)
        svc = await start_cameras_service()
        client = await connect(svc, "viewer")
        result = await client.call("get_system_status")
        assert result == {
            "status": "ready",
            "message": "System ready",
            "available_cameras": ["camera0", "camera4"],
            "discovery_active": False,
        }


class TestSupervision:
    """The capture pump under faults."""

    async def test_unplug_during_capture(self, cams, start_cameras_service, connect):
        """Unplug mid-capture: the pump ends, waiters get DeviceGone, the camera is DISCONNECTED."""
        cam = cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "viewer")
        entry = svc.app.cameras.get("camera0")
        sup = entry.supervisor
        async with sup.use():
            frame = await sup.wait_frame()
            cam.unplug()
            with pytest.raises(DeviceGone), trio.fail_after(10):
                while True:
                    frame = await sup.wait_frame(frame.sequence)
        await _until(lambda: entry.status == "DISCONNECTED")
        assert (await client.call("get_camera_list"))["connected"] == 0

    async def test_unplug_met_first_by_a_snapshot_read(self, cams, start_cameras_service):
        """A snapshot's read meets the unplug before the pump does and closes the camera: the
        pump ends as for any unplug (camera gone, DISCONNECTED), not as a crash."""
        cam = cams(0)
        svc = await start_cameras_service()
        entry = svc.app.cameras.get("camera0")
        sup = entry.supervisor
        with structlog.testing.capture_logs() as logs:
            async with sup.use():
                await sup.wait_frame()
                cam.unplug()
                with pytest.raises(DeviceGone):
                    sup.camera.read_latest()  # no checkpoint since the unplug: first to see it
                await _until(lambda: entry.status == "DISCONNECTED")
        events = [e["event"] for e in logs]
        assert "camera_gone" in events and "pump_crashed" not in events, events

    async def test_one_camera_failing_leaves_others(self, cams, start_cameras_service):
        """A camera whose stream keeps failing does not disturb another camera's pump."""
        bad = cams(0)
        cams(1)
        svc = await start_cameras_service()
        bad.inject("enospc_streamon")
        good = svc.app.cameras.get("camera1").supervisor
        broken = svc.app.cameras.get("camera0").supervisor
        async with broken.use(), good.use():
            first = await good.wait_frame()
            await good.wait_frame(first.sequence)
            await _until(lambda: broken.last_error is not None)
        assert "STREAMON" in broken.last_error or "space" in broken.last_error.lower()
        assert svc.app.cameras.get("camera0").status == "CONNECTED"

    async def test_keep_warm_then_stop(self, cams, start_cameras_service, mock_clock):
        """After the last user leaves, the pump stays warm for warm_keepalive_s, then stops."""
        cam = cams(0, manual_clock=True)
        svc = await start_cameras_service(snapshots={"warm_keepalive_s": 30})
        sup = svc.app.cameras.get("camera0").supervisor
        async with sup.use():
            await _until(lambda: sup.running)
        frame = None
        for _ in range(29):  # one frame per virtual second: no stall, just idleness
            cam.tick()
            frame = await sup.wait_frame(frame.sequence if frame else -1)
            mock_clock.jump(1)
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        assert sup.running
        mock_clock.jump(2)
        await _until(lambda: not sup.running)
        assert sup.last_error is None


class TestRestartedStream:
    """Frames of an earlier stream never count as new ones."""

    async def test_snapshot_after_keepalive_expired(self, cams, start_cameras_service, connect):
        """The first snapshot after the pump stopped and restarted succeeds, although the new
        stream's frame sequence starts again from 0."""
        cam = cams(0, manual_clock=True)
        svc = await start_cameras_service(snapshots={"warm_keepalive_s": 0.2, "timeout": 3})
        client = await connect(svc, "operator")
        sup = svc.app.cameras.get("camera0").supervisor
        async with sup.use():
            await _until(lambda: sup.running)
            with trio.fail_after(10):
                frame = None
                while frame is None or frame.sequence < 150:  # a first stream well past 0
                    cam.tick(50)
                    frame = await sup.wait_frame(frame.sequence if frame else -1)
        await _until(lambda: not sup.running)  # the keep-alive ran out: the pump stopped
        await client.send(
            {"jsonrpc": "2.0", "method": "take_snapshot", "params": {"device": "camera0"}, "id": 7}
        )
        await _until(lambda: sup.running)
        cam.tick(3)  # the new stream's frames 0, 1, 2
        reply = await client.recv()
        assert reply["id"] == 7 and reply["result"]["status"] == "SUCCESS", reply
