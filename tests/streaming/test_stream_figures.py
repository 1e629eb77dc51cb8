"""Stream and recording figures (get_metrics, /metrics), get_stream_status STOPPING, and an
encoder killed mid-stream, end to end on an emulated camera and the stand-in."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from camsvc.streaming import publisher as publisher_module
from tests.fixtures.service import RpcClient, Service
from tests.streaming.live import Restartable, ffprobe, start_live

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

Live = tuple[Service, RpcClient, Restartable]


@pytest.fixture
async def live(
    nursery: trio.Nursery,
    cams: Callable[..., object],
    start_cameras_service: Callable[..., Awaitable[Service]],
    connect: Callable[..., Awaitable[RpcClient]],
    tmp_path: Path,
) -> Live:
    """One emulated camera, the service, an admin client and the stand-in."""
    cams(0)
    return await start_live(nursery, start_cameras_service, connect, tmp_path / "recordings")


async def recordings_gauge(svc: Service) -> float:
    """camera_service_recordings_active as /metrics says now."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{svc.ports.main}/metrics")
    for family in text_string_to_metric_families(response.text):
        if family.name == "camera_service_recordings_active":
            return family.samples[0].value
    raise AssertionError("no camera_service_recordings_active family")


async def test_metrics_follow_streams_and_recordings(live: Live, nursery: trio.Nursery) -> None:
    """get_metrics counts ready paths, viewers, active and started recordings, per camera
    readers, bytes and recording; /metrics has the active recordings gauge."""
    svc, client, standin = live
    idle = await client.call("get_metrics")
    assert idle["stream_metrics"] == {"active_streams": 0, "total_streams": 1, "total_viewers": 0}
    assert idle["recording_metrics"] == {"active": 0, "total_started": 0}
    assert await recordings_gauge(svc) == 0

    await client.call("start_streaming", {"device": "camera0"})
    rtsp = f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0"
    reader = ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", rtsp, "-f", "null", "-"]
    reading = trio.CancelScope()
    nursery.start_soon(_run_until_cancelled, reader, reading)
    paths = svc.app.mediamtx_paths
    with trio.fail_after(10):
        while not ((p := paths.get("camera0")) and p.ready and p.readers):
            paths.refresh_soon()
            await paths.changed.wait()
    started = await client.call("start_recording", {"device": "camera0"})
    m = await client.call("get_metrics")
    reading.cancel()
    assert m["stream_metrics"] == {"active_streams": 1, "total_streams": 1, "total_viewers": 1}
    assert m["recording_metrics"] == {"active": 1, "total_started": 1}
    camera = m["camera_metrics"]["cameras"]["camera0"]
    assert camera["readers"] == 1 and camera["recording"] is True and camera["bytes_sent"] > 0
    assert await recordings_gauge(svc) == 1

    stopped = await client.call("stop_recording", {"device": "camera0"})
    assert stopped["filename"] == started["filename"]
    m = await client.call("get_metrics")
    assert m["recording_metrics"] == {"active": 0, "total_started": 1}
    assert m["camera_metrics"]["cameras"]["camera0"]["recording"] is False
    assert await recordings_gauge(svc) == 0


async def poll(predicate: Callable[[], bool], timeout_s: float = 10) -> None:
    """Wait (bounded) for a publisher's own state to change: it has no event to wait on,
    and `until` never sees the loop idle while the camera's pump delivers frames."""
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.02)


async def _run_until_cancelled(argv: list[str], scope: trio.CancelScope) -> None:
    with scope:
        await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)


async def test_stopping_while_the_encoder_ends(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A released publisher whose encoder has not exited yet is STOPPING, then INACTIVE."""
    svc, client, _ = live
    # An "encoder" that takes frames and then ignores SIGTERM: the stop waits for SIGKILL.
    stubborn = tmp_path / "stubborn-ffmpeg"
    stubborn.write_text("#!/bin/sh\ntrap '' TERM\ncat >/dev/null\nsleep 60\n")
    stubborn.chmod(0o755)
    monkeypatch.setattr(publisher_module, "KILL_GRACE_S", 60.0)
    publishers = svc.app.publishers
    publishers.ffmpeg = str(stubborn)
    pub = publishers.acquire("camera0", "stream")
    await poll(lambda: pub.running)
    pid = pub.pid
    assert pid is not None
    status = await client.call("get_stream_status", {"device": "camera0"})
    assert status["status"] == "STARTING" and status["ffmpeg_process"]["running"]

    publishers.release("camera0", "stream")
    status = await client.call("get_stream_status", {"device": "camera0"})
    assert status["status"] == "STOPPING" and status["ffmpeg_process"]["running"] is False
    os.killpg(pid, signal.SIGKILL)
    with trio.fail_after(10):
        await pub.stopped.wait()
    assert publishers.stopping("camera0") is None
    status = await client.call("get_stream_status", {"device": "camera0"})
    assert status["status"] == "INACTIVE"


async def test_encoder_killed_restarts_after_backoff(live: Live) -> None:
    """SIGKILL of the encoder: a new one starts no sooner than the first backoff, and the
    stream plays again."""
    svc, client, standin = live
    await client.call("start_streaming", {"device": "camera0"})
    pub = svc.app.publishers.get("camera0")
    first = pub.pid
    killed_at = time.monotonic()
    os.kill(first, signal.SIGKILL)
    await poll(lambda: pub.running and pub.pid != first)
    assert pub.restarts == 1 and pub.last_error
    assert pub.started_at is not None
    assert pub.started_at - killed_at >= publisher_module.BACKOFF_FIRST_S
    await svc.app.streams.wait_ready("camera0")
    probed = await ffprobe(f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0", "stream=codec_name")
    assert probed["streams"] == [{"codec_name": "h264"}]
    status = await client.call("get_stream_status", {"device": "camera0"})
    assert status["status"] == "ACTIVE" and status["ffmpeg_process"]["pid"] == pub.pid
