"""take_snapshot through the API on emulated cameras (API.md §8.3)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import trio
from PIL import Image

from tests.emulator.control import decode_sequence


class TestTakeSnapshot:
    """Results, files and events."""

    async def test_default_jpeg(self, cams, start_cameras_service, connect):
        """A default snapshot: generated name, JPEG at the camera's mode, file on disk, event."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        await client.call("subscribe_events", {"topics": ["snapshot.taken"]})
        r = await client.call("take_snapshot", {"device": "camera0"})
        assert re.fullmatch(
            r"camera0_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[a-z0-9]{6}\.jpg", r["filename"]
        )
        assert r["status"] == "SUCCESS" and r["format"] == "jpeg"
        assert (r["width"], r["height"]) == (1920, 1080)
        assert r["file_path"] == f"camera0/{r['filename']}"
        assert r["download_url"] == f"/files/snapshots/{r['filename']}"
        assert r["capture_ms"] > 0 and r["timestamp"].endswith("Z")
        path = Path(svc.app.config.snapshots.path) / r["file_path"]
        assert path.stat().st_size == r["file_size"]
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.size == (1920, 1080)
        event = await client.recv()
        assert event["params"]["topic"] == "snapshot.taken"
        assert event["params"]["data"] == {
            "device": "camera0",
            "filename": r["filename"],
            "file_size": r["file_size"],
            "width": 1920,
            "height": 1080,
            "format": "jpeg",
            "download_url": r["download_url"],
        }

    async def test_fresh_frame(self, cams, start_cameras_service, connect):
        """The snapshot's frame was captured after the request: its counter is past the newest
        frame the camera had delivered when the request was sent."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        sup = svc.app.cameras.get("camera0").supervisor
        await client.call("take_snapshot", {"device": "camera0"})  # warm the pump
        async with sup.use():
            before = (await sup.wait_frame()).sequence
            r = await client.call("take_snapshot", {"device": "camera0", "format": "png"})
        path = Path(svc.app.config.snapshots.path) / r["file_path"]
        with Image.open(path) as img:
            seq = decode_sequence(img.convert("RGB"), img.width, img.height)
        assert seq > before

    async def test_png_and_resize(self, cams, start_cameras_service, connect):
        """PNG output, and max_width/max_height downscale keeping the aspect ratio."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        r = await client.call(
            "take_snapshot",
            {"device": "camera0", "format": "png", "max_width": 960, "max_height": 960},
        )
        assert r["filename"].endswith(".png") and r["format"] == "png"
        assert (r["width"], r["height"]) == (960, 540)
        with Image.open(Path(svc.app.config.snapshots.path) / r["file_path"]) as img:
            assert img.format == "PNG" and img.size == (960, 540)

    @pytest.mark.parametrize(
        ("filename", "fmt", "stored"),
        [
            ("front", None, "front.jpg"),
            ("front.jpeg", "jpg", "front.jpeg"),
            ("Door_1.v2", "png", "Door_1.v2.png"),
        ],
    )
    async def test_client_names(self, cams, start_cameras_service, connect, filename, fmt, stored):
        """A client name gets the extension of its format when it has none."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        params = {"device": "camera0", "filename": filename}
        if fmt:
            params["format"] = fmt
        assert (await client.call("take_snapshot", params))["filename"] == stored

    async def test_name_taken_across_devices(self, cams, start_cameras_service, connect):
        """A name already used (by any camera) is -32602 filename_exists; nothing is overwritten."""
        cams(0)
        cams(1)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        first = await client.call("take_snapshot", {"device": "camera0", "filename": "door"})
        path = Path(svc.app.config.snapshots.path) / first["file_path"]
        before = path.read_bytes()
        for device in ("camera0", "camera1"):
            error = await client.error("take_snapshot", {"device": device, "filename": "door"})
            assert error["code"] == -32602 and error["data"]["reason"] == "filename_exists"
        assert path.read_bytes() == before

    async def test_fifty_concurrent_are_unique(self, cams, start_cameras_service, connect):
        """50 concurrent snapshots of one camera give 50 distinct files."""
        cams(0)
        svc = await start_cameras_service(security={"rate_limit_burst": 500})
        clients = [await connect(svc, "operator") for _ in range(5)]
        names: list[str] = []

        async def shoot(client) -> None:
            for _ in range(10):
                names.append(
                    (await client.call("take_snapshot", {"device": "camera0", "max_width": 320}))[
                        "filename"
                    ]
                )

        async with trio.open_nursery() as nursery:
            for c in clients:
                nursery.start_soon(shoot, c)
        assert len(names) == len(set(names)) == 50
        files = os.listdir(Path(svc.app.config.snapshots.path) / "camera0")
        assert sorted(files) == sorted(names)

    @pytest.mark.parametrize(
        ("params", "reason", "param"),
        [
            ({"device": "camera0", "filename": "../x"}, "invalid_filename", "filename"),
            ({"device": "camera0", "filename": "a/b"}, "invalid_filename", "filename"),
            ({"device": "camera0", "filename": ".hidden"}, "invalid_filename", "filename"),
            (
                {"device": "camera0", "filename": "x.png", "format": "jpeg"},
                "invalid_filename",
                "filename",
            ),
            ({"device": "camera0", "filename": "a\x00b"}, "invalid_filename", "filename"),
            ({"device": "camera0", "format": "gif"}, "invalid_value", "format"),
            ({"device": "camera0", "quality": 0}, "out_of_range", "quality"),
            ({"device": "camera0", "quality": 101}, "out_of_range", "quality"),
            ({"device": "camera0", "max_width": 0}, "out_of_range", "max_width"),
            ({"device": "camera0", "max_height": 20000}, "out_of_range", "max_height"),
            ({"device": "camera0", "quality": "high"}, "invalid_type", "quality"),
            ({"device": "nope"}, "invalid_device", "device"),
            ({}, "missing_param", "device"),
        ],
    )
    async def test_bad_params(self, cams, start_cameras_service, connect, params, reason, param):
        """Bad params are -32602 with the reason and the param named."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        error = await client.error("take_snapshot", params)
        assert (error["code"], error["data"]["reason"], error["data"]["param"]) == (
            -32602,
            reason,
            param,
        )

    async def test_png_quality_zero_allowed(self, cams, start_cameras_service, connect):
        """quality 0 is accepted for PNG (it is ignored there)."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        assert (
            await client.call("take_snapshot", {"device": "camera0", "format": "png", "quality": 0})
        )["format"] == "png"


class TestFailures:
    """Unknown cameras, capture failures, storage and crashes."""

    async def test_unknown_or_disconnected_camera(self, cams, start_cameras_service, connect):
        """Unknown and DISCONNECTED cameras are -32010."""
        cam = cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        assert (await client.error("take_snapshot", {"device": "camera5"}))["code"] == -32010
        cam.unplug()
        with trio.fail_after(10):
            while svc.app.cameras.get("camera0").status != "DISCONNECTED":
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        assert (await client.error("take_snapshot", {"device": "camera0"}))["code"] == -32010

    async def test_stalled_camera_times_out(self, cams, start_cameras_service, connect):
        """No frame within snapshots.timeout: -32603 capture_failed, no file."""
        cams(0, manual_clock=True)
        svc = await start_cameras_service(snapshots={"timeout": 0.5})
        client = await connect(svc, "operator")
        error = await client.error("take_snapshot", {"device": "camera0", "filename": "never"})
        assert error["code"] == -32603 and error["data"]["reason"] == "capture_failed"
        assert not list((Path(svc.app.config.snapshots.path)).glob("*/never*"))

    async def test_unplug_mid_snapshot(self, cams, start_cameras_service, connect):
        """Unplugged while waiting for a frame: capture_failed; the camera turns DISCONNECTED."""
        cam = cams(0, manual_clock=True)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")
        sup = svc.app.cameras.get("camera0").supervisor
        await client.send(
            {"jsonrpc": "2.0", "method": "take_snapshot", "params": {"device": "camera0"}, "id": 99}
        )
        with trio.fail_after(10):
            while not sup.running:
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        cam.unplug()
        reply = await client.recv()
        while "id" not in reply:
            reply = await client.recv()
        assert (
            reply["error"]["code"] == -32603
            and reply["error"]["data"]["reason"] == "capture_failed"
        )

    async def test_storage_blocked(self, cams, start_cameras_service, connect):
        """At or over block_percent: -32060 with the figures, and no file written."""
        cams(0)
        svc = await start_cameras_service(storage={"warn_percent": 0.001, "block_percent": 0.002})
        client = await connect(svc, "operator")
        error = await client.error("take_snapshot", {"device": "camera0", "filename": "full"})
        assert error["code"] == -32060 and error["data"]["reason"] == "insufficient_storage"
        assert error["data"]["block_percent"] == 0.002 and error["data"]["usage_percentage"] > 0
        assert not list(Path(svc.app.config.snapshots.path).glob("*/full*"))

    async def test_crash_before_rename_leaves_nothing_visible(
        self, cams, start_cameras_service, connect, monkeypatch
    ):
        """A crash between write and link leaves no file under the final name and nothing listed;
        the temporary is hidden and removed at the next start."""
        cams(0)
        svc = await start_cameras_service()
        client = await connect(svc, "operator")

        def crash(src, dst, *a, **k):
            raise SystemError("simulated crash between write and rename")

        monkeypatch.setattr(os, "link", crash)
        monkeypatch.setattr(
            Path, "unlink", lambda self, missing_ok=False: None
        )  # the crash skips cleanup
        error = await client.error("take_snapshot", {"device": "camera0", "filename": "crash"})
        assert error["code"] == -32603
        monkeypatch.undo()
        root = Path(svc.app.config.snapshots.path)
        assert not (root / "camera0" / "crash.jpg").exists()
        assert [p.name for p in (root / "camera0").iterdir() if p.name.startswith(".crash")]
        assert (await client.call("list_snapshots"))["total"] == 0
        from camsvc.media.snapshots import remove_stale_temporaries

        assert remove_stale_temporaries(root) == 1
