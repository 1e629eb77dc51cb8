"""MediaMTX outages end to end: the stand-in stopped and restarted on the same ports."""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from camsvc.timefmt import parse_timestamp
from tests.fixtures.service import RpcClient, Service, until
from tests.streaming.live import Inbox, Restartable, ffprobe, recording_update, start_live, topic

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

# API.md §7: the methods marked M, the only ones that may answer -32050.
M_METHODS = {
    "start_recording",
    "stop_recording",
    "start_streaming",
    "stop_streaming",
    "get_stream_status",
    "get_streams",
    "add_external_stream",
    "remove_external_stream",
}
TOPICS = ["mediamtx.stream_started", "mediamtx.stream_stopped", "system.health", "recording.error"]


@pytest.fixture
async def outage_service(
    nursery: trio.Nursery,
    cams: Callable[..., object],
    start_cameras_service: Callable[..., Awaitable[Service]],
    connect: Callable[..., Awaitable[RpcClient]],
    tmp_path: Path,
) -> tuple[Service, RpcClient, Restartable]:
    """One emulated camera, the service, an admin client, and a restartable stand-in."""
    cams(0)
    return await start_live(nursery, start_cameras_service, connect, tmp_path / "recordings")


async def test_outage_mid_recording_and_recovery(outage_service) -> None:
    """Stopped mid-recording: ERROR mediamtx_error, segments kept, -32050 for M methods
    only; restarted: the path is re-created, the wanted stream publishes again (ffprobe)."""
    svc, client, standin = outage_service
    await client.call("subscribe_events", {"topics": TOPICS})
    inbox = Inbox(client)
    await client.call("start_streaming", {"device": "camera0"})
    await inbox.expect(topic("mediamtx.stream_started", device="camera0"))
    started = await client.call("start_recording", {"device": "camera0"})
    segment = Path(svc.app.config.recording.path) / "camera0" / started["filename"]
    with trio.fail_after(10):
        # MediaMTX writes the segment on its own schedule: wait for a first fragment.
        while not segment.exists() or segment.stat().st_size < 2048:  # noqa: ASYNC110
            await trio.sleep(0.05)

    await standin.stop()
    stopped_at = time.time()
    error = await inbox.expect(recording_update("ERROR"))
    assert error["params"]["reason"] == "mediamtx_error"
    assert error["params"]["filename"] == started["filename"]
    # Recorded until MediaMTX's last write, not until the outage was noticed.
    recorded = stopped_at - parse_timestamp(started["start_time"])
    assert 0 < error["params"]["duration"] <= recorded + 0.05
    await inbox.expect(topic("mediamtx.stream_stopped", device="camera0"))
    assert not svc.app.recordings.is_recording("camera0")
    # The segment written before the outage stays, catalogued, and plays.
    info = await client.call("get_recording_info", {"filename": started["filename"]})
    assert info["file_size"] > 0
    probed = await ffprobe(str(segment), "stream=codec_name")
    assert probed["streams"] == [{"codec_name": "h264"}]

    # Down: the M methods answer -32050; camera, snapshot, file and system methods work.
    for method in ("start_streaming", "stop_streaming", "get_stream_status", "start_recording"):
        err = await client.error(method, {"device": "camera0"})
        assert (err["code"], err["data"]["reason"]) == (-32050, "mediamtx_unavailable"), method
    assert (await client.error("get_streams"))["code"] == -32050
    cameras = (await client.call("get_camera_list"))["cameras"]
    assert [c["device"] for c in cameras] == ["camera0"] and cameras[0]["recording"] is False
    assert (await client.call("get_camera_status", {"device": "camera0"}))["status"] == "CONNECTED"
    snap = await client.call("take_snapshot", {"device": "camera0"})
    assert snap["status"] == "SUCCESS" and snap["file_size"] > 0
    listed = await client.call("list_recordings", {"device": "camera0"})
    assert started["filename"] in [f["filename"] for f in listed["files"]]
    url = await client.call("get_stream_url", {"device": "camera0"})
    assert url["stream_status"] == "ERROR"
    status = await client.call("get_status")
    assert status["status"] == "DEGRADED" and status["components"]["mediamtx"] == "ERROR"
    system = await client.call("get_system_status")
    assert system["status"] == "partial"
    metrics = await client.call("get_metrics")
    assert metrics["recording_metrics"] == {"active": 0, "total_started": 1}
    await inbox.expect(topic("system.health", status="degraded"))

    await standin.start()
    # Recovered: the path is back and the publisher start_streaming wanted publishes again.
    await inbox.expect(topic("mediamtx.stream_started", device="camera0"))
    rtsp = f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0"
    probed = await ffprobe(rtsp, "stream=codec_name")
    assert probed["streams"] == [{"codec_name": "h264"}]
    stream = await client.call("get_stream_status", {"device": "camera0"})
    assert stream["status"] == "ACTIVE" and stream["ffmpeg_process"]["running"]
    with trio.fail_after(10):
        while (await client.call("get_status"))["components"]["mediamtx"] != "RUNNING":
            await svc.app.mediamtx_paths.changed.wait()
    health = svc.app.mediamtx_watchdog.health()
    assert health.details["outages"] == 1 and "recovered_at" in health.details
    # Recording works again on the re-created path.
    again = await client.call("start_recording", {"device": "camera0"})
    stopped = await client.call("stop_recording", {"device": "camera0"})
    assert stopped["segments"] == [again["filename"]] and stopped["file_size"] > 0
    metrics = await client.call("get_metrics")
    assert metrics["recording_metrics"] == {"active": 0, "total_started": 2}


async def test_outage_before_any_camera_path_is_wanted(outage_service) -> None:
    """An outage with nothing streaming or recording: health only; recovery re-adds paths."""
    svc, client, standin = outage_service
    await client.call("subscribe_events", {"topics": TOPICS})
    inbox = Inbox(client)
    await standin.stop()
    await inbox.expect(topic("system.health", status="degraded"))
    await until(lambda: svc.app.mediamtx_watchdog.outages == 1)
    assert svc.app.publishers.get("camera0") is None
    recovered = svc.app.mediamtx_watchdog.recovered
    await standin.start()
    with trio.fail_after(10):
        await recovered.wait()
    # The fresh stand-in had no paths: camera0's is added again.
    with trio.fail_after(10):
        while not svc.app.mediamtx_paths.get("camera0"):
            await svc.app.mediamtx_paths.changed.wait()
    await client.call("start_streaming", {"device": "camera0"})
    probed = await ffprobe(f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0", "stream=codec_name")
    assert probed["streams"] == [{"codec_name": "h264"}]


async def test_only_m_methods_need_mediamtx(service: Service) -> None:
    """The registry marks exactly API.md's M methods as needing MediaMTX (rpc.discover shows
    it as `x-needs-mediamtx`); every other method is served without it."""
    for spec in service.app.registry:
        assert spec.needs_mediamtx == (spec.name in M_METHODS), spec.name


async def test_quick_restart_mid_recording(outage_service) -> None:
    """A MediaMTX restarted between two checks is told by its new start time: the recording
    ends with ERROR mediamtx_error, the path comes back and the stream plays again."""
    svc, client, standin = outage_service
    inbox = Inbox(client)
    await client.call("start_streaming", {"device": "camera0"})
    started = await client.call("start_recording", {"device": "camera0"})
    segment = Path(svc.app.config.recording.path) / "camera0" / started["filename"]
    with trio.fail_after(10):
        while not segment.exists() or segment.stat().st_size < 2048:  # noqa: ASYNC110
            await trio.sleep(0.05)
    await standin.stop()
    await standin.start()  # back at once, on the same ports
    error = await inbox.expect(recording_update("ERROR"))
    assert error["params"]["reason"] == "mediamtx_error"
    assert error["params"]["filename"] == started["filename"]
    assert svc.app.mediamtx_paths.restarts == 1
    assert not svc.app.recordings.is_recording("camera0")
    await svc.app.streams.wait_ready("camera0")
    probed = await ffprobe(f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0", "stream=codec_name")
    assert probed["streams"] == [{"codec_name": "h264"}]
    # Nothing records on the new MediaMTX: the reconcile was told the recording ended.
    conf = await svc.app.mediamtx.config_path_get("camera0")
    assert conf.record is False
