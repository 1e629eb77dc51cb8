"""Streams and recordings end to end: emulated cameras, the real service, the stand-in, ffprobe."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import msgspec
import pytest
import trio

from camsvc.streaming import publisher
from camsvc.streaming.standin import StandIn
from camsvc.timefmt import parse_timestamp
from tests.fixtures.http import http_request
from tests.streaming.live import ffprobe, serve_with_standin

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture
async def live(nursery, cams, start_cameras_service, connect, tmp_path: Path):
    """A service on one emulated camera and a stand-in whose RTSP port the config names."""

    async def start(**sections: Any):
        standin = StandIn(recordings=str(tmp_path / "recordings"))
        standin.scope = trio.CancelScope()  # cancelling it stops the stand-in (an outage)

        async def run_standin(task_status: trio.TaskStatus[None]) -> None:
            with standin.scope:
                await standin.run(task_status=task_status)

        await nursery.start(run_standin)
        standin.camera = cams(0)
        svc, client = await serve_with_standin(
            start_cameras_service, connect, standin.ports, "operator", **sections
        )
        return svc, client, standin

    return start


async def test_start_probe_stop(live) -> None:
    """start_streaming makes the path ready with H.264 at the camera's size; stop ends it."""
    svc, client, standin = await live()
    url = await client.call("get_stream_url", {"device": "camera0"})
    assert url["stream_status"] == "NOT_READY" and url["available"] is True
    started = await client.call("start_streaming", {"device": "camera0"})
    assert started["status"] == "STARTED" and started["stream_name"] == "camera0"
    assert started["stream_url"] == started["urls"]["rtsp"]
    assert started["auto_close_after"] == "300s"
    again = await client.call("start_streaming", {"device": "camera0"})
    assert again["start_time"] == started["start_time"]
    rtsp = f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0"
    probed = await ffprobe(rtsp, "stream=codec_name,width,height")
    camera = (await client.call("get_camera_list"))["cameras"][0]
    w, h = map(int, camera["resolution"].split("x"))
    assert probed["streams"] == [{"codec_name": "h264", "width": w, "height": h}]

    status = await client.call("get_stream_status", {"device": "camera0"})
    assert status["status"] == "ACTIVE" and status["ready"] is True
    assert status["ffmpeg_process"]["running"] and status["ffmpeg_process"]["pid"]
    assert status["mediamtx_path"]["exists"] is True
    svc.app.mediamtx_paths.refresh_soon()
    with trio.fail_after(5):
        while not (p := svc.app.mediamtx_paths.get("camera0")) or not p.ready:
            await svc.app.mediamtx_paths.changed.wait()
    assert (await client.call("get_stream_url", {"device": "camera0"}))["stream_status"] == "READY"
    streams = await client.call("get_streams")
    assert [s["name"] for s in streams] == ["camera0"]
    assert streams[0]["ready"] is True and streams[0]["source"] == "rtspSession"

    stopped = await client.call("stop_streaming", {"device": "camera0"})
    assert stopped["status"] == "STOPPED" and stopped["stream_continues"] is False
    assert stopped["start_time"] == started["start_time"] and stopped["duration"] > 0
    with trio.fail_after(5):
        # Only MediaMTX knows when the path went down: poll it, bounded.
        while (await client.call("get_stream_status", {"device": "camera0"}))["ready"]:  # noqa: ASYNC110
            await trio.sleep(0.05)
    again = await client.call("stop_streaming", {"device": "camera0"})
    assert again["start_time"] is None and again["duration"] == 0


async def test_record_three_seconds(live) -> None:
    """A 3 s recording is one catalogued fMP4 segment of about 3 s, named as returned."""
    svc, client, _ = await live()
    await client.call("subscribe_events", {"topics": ["recording.start", "recording.stop"]})
    started = await client.call("start_recording", {"device": "camera0"})
    assert started["status"] == "RECORDING" and started["filename"].startswith("camera0_")
    assert started["filename"].endswith(".mp4") and started["format"] == "fmp4"
    assert started["duration"] is None
    err = await client.error("start_recording", {"device": "camera0"})
    assert (err["code"], err["data"]["reason"]) == (-32020, "already_recording")
    cams = (await client.call("get_camera_list"))["cameras"]
    assert cams[0]["recording"] is True
    snap = await client.call("take_snapshot", {"device": "camera0"})  # shares the pump
    assert snap["file_size"] > 0
    # The recording's length is what is under test: 3 s from its start.
    start = parse_timestamp(started["start_time"])
    await trio.sleep(max(0.0, start + 3.0 - time.time()))
    stopped = await client.call("stop_recording", {"device": "camera0"})
    assert stopped["segments"] == [started["filename"]]
    assert stopped["filename"] == started["filename"] and stopped["file_size"] > 0
    assert 2.5 <= stopped["duration"] <= 4.0
    listed = await client.call("list_recordings", {"device": "camera0"})
    assert [f["filename"] for f in listed["files"]] == [started["filename"]]
    assert listed["files"][0]["duration"] == pytest.approx(stopped["duration"], abs=0.5)
    file = Path(svc.app.config.recording.path) / "camera0" / started["filename"]
    info = await ffprobe(str(file), "format=duration:stream=codec_name")
    assert info["streams"] == [{"codec_name": "h264"}]
    assert 2.5 <= float(info["format"]["duration"]) <= 3.5, info
    err = await client.error("stop_recording", {"device": "camera0"})
    assert (err["code"], err["data"]["reason"]) == (-32020, "not_recording")
    assert (await client.call("get_camera_list"))["cameras"][0]["recording"] is False
    kinds = [
        (m["method"], m["params"].get("status") or m["params"].get("topic")) for m in client.pending
    ]
    assert ("recording_status_update", "STARTED") in kinds
    assert ("recording_status_update", "STOPPED") in kinds
    assert ("event", "recording.start") in kinds and ("event", "recording.stop") in kinds


async def test_recording_starts_on_a_forced_key_frame(live, monkeypatch) -> None:
    """start_recording on a streaming camera asks the encoder for a key frame: with periodic
    key frames a minute apart, the first segment still starts at once."""
    monkeypatch.setattr(publisher, "GOP_S", 60.0)
    svc, client, _ = await live(recording={"start_timeout": 5})
    await client.call("start_streaming", {"device": "camera0"})
    await svc.app.streams.wait_ready("camera0")
    pub = svc.app.publishers.get("camera0")
    with trio.fail_after(5):
        # The encoder's frame count is its own business: poll it, bounded.
        while pub.frames_sent < 3:  # noqa: ASYNC110
            await trio.sleep(0.05)
    keyframes = pub.keyframes_sent
    assert keyframes == 2  # the encoder's first two frames (see publisher.py), no periodic one
    started = await client.call("start_recording", {"device": "camera0"})
    assert started["status"] == "RECORDING"
    assert pub.keyframes_sent > keyframes and pub.restarts == 0
    stopped = await client.call("stop_recording", {"device": "camera0"})
    file = Path(svc.app.config.recording.path) / "camera0" / stopped["filename"]
    info = await ffprobe(str(file), "stream=codec_name")
    assert info["streams"] == [{"codec_name": "h264"}]


async def test_duration_auto_stop(live) -> None:
    """With duration=1 the recording stops by itself with reason duration_elapsed."""
    svc, client, _ = await live()
    started = await client.call("start_recording", {"device": "camera0", "duration": 1})
    assert started["duration"] == 1
    with trio.fail_after(8):
        while True:
            msg = await client.recv()
            if (
                msg.get("method") == "recording_status_update"
                and msg["params"]["status"] != "STARTED"
            ):
                break
    assert msg["params"]["status"] == "STOPPED"
    assert msg["params"]["reason"] == "duration_elapsed"
    assert 0.5 <= msg["params"]["duration"] <= 2.0
    assert not svc.app.recordings.is_recording("camera0")


async def test_five_second_recording_catalogued_and_downloaded(live, tmp_path: Path) -> None:
    """duration=5: the recording stops by itself; its fMP4 file is catalogued, lasts 5 s
    (± 10 %) for ffprobe and downloads over HTTP byte for byte."""
    svc, client, _ = await live()
    started = await client.call("start_recording", {"device": "camera0", "duration": 5})
    with trio.fail_after(15):
        while True:
            # STOPPED follows STARTED by the whole 5 s and the last segment's close: more
            # than recv's own 5 s on a loaded machine.
            msg = await client.recv_unbounded()
            if msg.get("method") == "recording_status_update" and msg["params"]["status"] in (
                "STOPPED",
                "ERROR",
            ):
                break
    assert (msg["params"]["status"], msg["params"]["reason"]) == ("STOPPED", "duration_elapsed")
    listed = await client.call("list_recordings", {"device": "camera0"})
    assert [f["filename"] for f in listed["files"]] == [started["filename"]]
    info = await client.call("get_recording_info", {"filename": started["filename"]})
    target = urlsplit(info["download_url"]).path
    token = svc.token("viewer")
    reply = await http_request(svc.ports.main, target, headers={"Authorization": f"Bearer {token}"})
    file = Path(svc.app.config.recording.path) / "camera0" / started["filename"]
    assert reply.status == 200 and reply.body == file.read_bytes()
    local = tmp_path / "downloaded.mp4"
    local.write_bytes(reply.body)
    probed = await ffprobe(str(local), "format=duration,format_name:stream=codec_name")
    assert probed["streams"] == [{"codec_name": "h264"}]
    assert "mp4" in probed["format"]["format_name"]
    assert 4.5 <= float(probed["format"]["duration"]) <= 5.5, probed


async def test_checks(live) -> None:
    """mkv is -32030, unknown camera -32010, not recording -32020, duration out of range -32602."""
    _, client, _ = await live()
    err = await client.error("start_recording", {"device": "camera0", "format": "mkv"})
    assert (err["code"], err["data"]["reason"]) == (-32030, "format_unsupported")
    err = await client.error("start_recording", {"device": "camera5"})
    assert err["code"] == -32010
    err = await client.error("start_recording", {"device": "camera0", "duration": 0})
    assert err["code"] == -32602
    err = await client.error("stop_recording", {"device": "camera0"})
    assert (err["code"], err["data"]["reason"]) == (-32020, "not_recording")
    err = await client.error("get_stream_url", {"device": "camera5"})
    assert err["code"] == -32010


async def next_status(client, *, skip: str = "STARTED") -> dict[str, Any]:
    """The params of the next recording_status_update whose status is not `skip`."""
    with trio.fail_after(8):
        while True:
            msg = await client.recv_unbounded()
            update = msg.get("method") == "recording_status_update"
            if update and msg["params"]["status"] != skip:
                return msg["params"]


async def test_stream_kept_for_recording_and_file_in_use(live) -> None:
    """stop_streaming keeps a recording's publisher; an open segment cannot be deleted."""
    svc, client, _ = await live()
    await client.call("start_streaming", {"device": "camera0"})
    started = await client.call("start_recording", {"device": "camera0"})
    stopped = await client.call("stop_streaming", {"device": "camera0"})
    assert stopped["stream_continues"] is True
    assert svc.app.publishers.get("camera0") is not None
    err = await client.error("delete_recording", {"filename": started["filename"]})
    assert (err["code"], err["data"]["reason"]) == (-32020, "file_in_use")
    await client.call("stop_recording", {"device": "camera0"})
    assert svc.app.publishers.get("camera0") is None
    deleted = await client.call("delete_recording", {"filename": started["filename"]})
    assert deleted["deleted"] is True


async def test_unplug_mid_recording(live) -> None:
    """Unplugging the camera ends its recording with ERROR camera_disconnected; files stay."""
    svc, client, standin = await live()
    started = await client.call("start_recording", {"device": "camera0"})
    standin.camera.unplug()
    params = await next_status(client)
    assert params["status"] == "ERROR" and params["reason"] == "camera_disconnected"
    assert params["filename"] == started["filename"]
    file = Path(svc.app.config.recording.path) / "camera0" / started["filename"]
    assert file.exists()
    info = await client.call("get_recording_info", {"filename": started["filename"]})
    assert info["file_size"] > 0
    assert not svc.app.recordings.is_recording("camera0")


async def test_mediamtx_down(live) -> None:
    """With MediaMTX gone the M methods answer -32050; get_stream_url still answers (ERROR)."""
    svc, client, standin = await live()
    standin.scope.cancel()
    with trio.fail_after(10):
        while svc.app.mediamtx_paths.reachable:
            await svc.app.mediamtx_paths.refresh()
    for method in ("start_streaming", "stop_streaming", "get_stream_status", "start_recording"):
        err = await client.error(method, {"device": "camera0"})
        assert (err["code"], err["data"]["reason"]) == (-32050, "mediamtx_unavailable"), method
    err = await client.error("get_streams")
    assert err["code"] == -32050
    err = await client.error("stop_recording", {"device": "camera0"})
    assert err["code"] == -32020  # not recording is checked before MediaMTX
    url = await client.call("get_stream_url", {"device": "camera0"})
    assert url["stream_status"] == "ERROR" and url["available"] is False
    assert svc.app.publishers.get("camera0") is None


async def test_encoder_killed_is_restarted(live) -> None:
    """The publisher's RTSP relay killed (its connection to MediaMTX drops): the publisher is
    restarted; stream_started is announced when the path is ready."""
    svc, client, _ = await live()
    await client.call("subscribe_events", {"topics": ["mediamtx.stream_started"]})
    await client.call("start_streaming", {"device": "camera0"})
    with trio.fail_after(5):
        while True:
            msg = await client.recv()
            if msg.get("method") == "event":
                break
    data = msg["params"]["data"]
    assert data == {"device": "camera0", "stream_name": "camera0", "source": "rtspSession"}
    publisher = svc.app.publishers.get("camera0")
    first = publisher.pid
    os.kill(first, signal.SIGKILL)
    with trio.fail_after(8):
        # The restart is the publisher's own business: poll its state, bounded.
        while publisher.pid in (None, first) or publisher.restarts == 0:  # noqa: ASYNC110
            await trio.sleep(0.05)
    await svc.app.streams.wait_ready("camera0")
    assert publisher.restarts == 1 and publisher.last_error  # exit or broken pipe, first wins


async def test_encoder_error_restarts_the_publisher(live, monkeypatch) -> None:
    """An error from the PyAV encoder mid-stream ends that encoder and its relay; the
    publisher starts a new pair after its backoff and the stream is ready again."""
    svc, client, _ = await live()
    await client.call("start_streaming", {"device": "camera0"})
    await svc.app.streams.wait_ready("camera0")
    pub = svc.app.publishers.get("camera0")
    first = pub.pid
    real_encode = publisher.H264Encoder.encode
    failed: list[int] = []

    def encode_failing_once(self, data, pts_ms, *, keyframe):
        if not failed:
            failed.append(pts_ms)
            raise av.FFmpegError(errno.EIO, "injected encoder failure")
        return real_encode(self, data, pts_ms, keyframe=keyframe)

    monkeypatch.setattr(publisher.H264Encoder, "encode", encode_failing_once)
    with trio.fail_after(8):
        # The restart is the publisher's own business: poll its state, bounded.
        while not (pub.running and pub.pid != first):  # noqa: ASYNC110
            await trio.sleep(0.05)
    await svc.app.streams.wait_ready("camera0")
    assert failed and pub.restarts == 1
    assert "injected encoder failure" in (pub.last_error or "")


async def test_idle_close_and_progress(live) -> None:
    """An unread stream closes after idle_close_after; a recording reports progress."""
    svc, client, _ = await live(recording={"progress_interval": 0.5})
    svc.app.streams.cfg = msgspec.structs.replace(svc.app.streams.cfg, idle_close_after=1)
    await client.call("subscribe_events", {"topics": ["recording.progress"]})
    await client.call("start_streaming", {"device": "camera0"})
    with trio.fail_after(8):
        # Closing is the service's own timer: poll its state, bounded.
        while svc.app.publishers.get("camera0") is not None:  # noqa: ASYNC110
            await trio.sleep(0.05)
    started = await client.call("start_recording", {"device": "camera0"})
    with trio.fail_after(5):
        while True:
            msg = await client.recv()
            if msg.get("method") == "event":
                break
    data = msg["params"]["data"]
    assert data["device"] == "camera0" and data["filename"] == started["filename"]
    assert data["elapsed"] > 0 and data["file_size"] >= 0
    await client.call("stop_recording", {"device": "camera0"})
