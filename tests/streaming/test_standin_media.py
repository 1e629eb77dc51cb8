"""Real media through the stand-in: ffmpeg publishes H.264 over RTSP, ffprobe reads it back,
the recorder writes an fMP4 segment, and runOnDemand starts and stops a publisher."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from camsvc.streaming.standin import PathState, StandIn, StandInPorts
from tests.streaming.conftest import Api

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

WIDTH, HEIGHT, FPS = 320, 240, 15


def publisher_cmd(url: str, seconds: int = 60, size: str = f"{WIDTH}x{HEIGHT}") -> str:
    """An ffmpeg command publishing test-pattern H.264 (key frame every 1/3 s) to `url`."""
    return (
        f"ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size={size}:rate={FPS}"
        f" -t {seconds} -c:v libx264 -preset ultrafast -tune zerolatency -g 5 -f rtsp {url}"
    )


async def ffprobe(target: str, entries: str) -> dict:
    """ffprobe's JSON for `target` (an RTSP URL or a file)."""
    with trio.fail_after(20):
        done = await trio.run_process(
            ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", target],
            capture_stdout=True,
            capture_stderr=True,
        )
    return json.loads(done.stdout)


async def wait_for(path: PathState, predicate: Callable[[PathState], bool]) -> None:
    """Wait (bounded) until `predicate(path)` holds, woken by the path's ready changes."""
    with trio.fail_after(15):
        while not predicate(path):
            with trio.move_on_after(0.05):
                await path.ready_changed.wait()


@pytest.fixture
async def publish(nursery: trio.Nursery, ports: StandInPorts) -> AsyncIterator[Callable]:
    """Start ffmpeg publishing to a path; every publisher is killed at the end."""
    procs: list[trio.Process] = []

    async def start(name: str) -> trio.Process:
        url = f"rtsp://127.0.0.1:{ports.rtsp}/{name}"
        proc = await trio.lowlevel.open_process(
            publisher_cmd(url).split(), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        await proc.wait()


async def test_publish_read_record(
    standin: StandIn, api: Api, publish: Callable, tmp_path: Path
) -> None:
    """Published H.264 reads back as published; record on for 5 s gives a 5 s fMP4 segment."""
    record_path = str(tmp_path / "rec" / "%path" / "%path_%Y-%m-%d_%H-%M-%S-%f")
    done_file = tmp_path / "segment-complete.txt"
    conf = {
        "recordPath": record_path,
        "recordFormat": "fmp4",
        "recordSegmentDuration": "1h",
        "recordPartDuration": "200ms",
        "runOnRecordSegmentComplete": f"sh -c 'echo $MTX_PATH $MTX_SEGMENT_PATH > {done_file}'",
    }
    assert (await api.call("POST", "/v3/config/paths/add/camera0", conf))[0] == 200
    await publish("camera0")
    path = standin.paths["camera0"]
    await wait_for(path, lambda p: p.ready)

    url = f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera0"
    probed = await ffprobe(url, "stream=codec_name,width,height")
    assert probed["streams"] == [{"codec_name": "h264", "width": WIDTH, "height": HEIGHT}]
    _, state = await api.call("GET", "/v3/paths/get/camera0")
    assert state["ready"] and state["tracks"] == ["H264"]
    assert state["source"]["type"] == "rtspSession"
    assert state["bytesReceived"] > 0 and state["bytesSent"] > 0
    await wait_for(path, lambda p: not p.readers)  # ffprobe has left
    assert (await api.call("GET", "/v3/paths/get/camera0"))[1]["readers"] == []

    await api.call("PATCH", "/v3/config/paths/patch/camera0", {"record": True})
    with trio.fail_after(15):
        while True:
            _, listed = await api.call("GET", "/v3/recordings/list")
            if listed["items"]:
                break
            await trio.sleep(0.05)
    [recording] = listed["items"]
    [segment] = recording["segments"]
    assert recording["name"] == "camera0"
    start = dt.datetime.fromisoformat(segment["start"].replace("Z", "+00:00"))
    # Record on for 5 s counted from the segment's first sample, as MediaMTX stamps it.
    now = dt.datetime.now(dt.UTC)
    await trio.sleep(max(0.0, 5.0 - (now - start).total_seconds()))
    await api.call("PATCH", "/v3/config/paths/patch/camera0", {"record": False})
    with trio.fail_after(15):
        await path.recorder_stopped.wait()

    files = sorted((tmp_path / "rec" / "camera0").iterdir())
    assert len(files) == 1
    local = start.astimezone()
    assert files[0].name == local.strftime("camera0_%Y-%m-%d_%H-%M-%S-") + f"{local:%f}.mp4"
    info = await ffprobe(
        str(files[0]), "format=duration,format_name:stream=codec_name,width,height"
    )
    assert info["streams"] == [{"codec_name": "h264", "width": WIDTH, "height": HEIGHT}]
    assert 4.5 <= float(info["format"]["duration"]) <= 5.5, info
    head = files[0].read_bytes()[:4096]
    assert b"moov" in head and b"mvex" in head  # fragmented MP4
    with trio.fail_after(10):
        # The hook runs in its own process; its output file is the only signal.
        while not done_file.exists() or not done_file.read_text().strip():  # noqa: ASYNC110
            await trio.sleep(0.05)
    assert done_file.read_text().split() == ["camera0", str(files[0])]


async def test_run_on_demand(standin: StandIn, api: Api, tmp_path: Path) -> None:
    """A reader starts runOnDemand; the command stops runOnDemandCloseAfter after it leaves."""
    ready_file = tmp_path / "ready.txt"
    conf = {
        "runOnDemand": publisher_cmd("rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH", size="160x120"),
        "runOnDemandCloseAfter": "1s",
        "runOnDemandStartTimeout": "15s",
        "runOnReady": f"sh -c 'echo $MTX_PATH $MTX_SOURCE_TYPE $RTSP_PORT > {ready_file}'",
    }
    assert (await api.call("POST", "/v3/config/paths/add/camera1", conf))[0] == 200
    path = standin.paths["camera1"]
    assert not path.ready and "demand" not in path.hooks

    url = f"rtsp://127.0.0.1:{standin.ports.rtsp}/camera1"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ffprobe, url, "stream=codec_name,width,height")
        await wait_for(path, lambda p: "demand" in p.hooks)
        demand = path.hooks["demand"]
        await wait_for(path, lambda p: p.ready)
        assert (await api.call("GET", "/v3/paths/get/camera1"))[1]["ready"] is True
    # The reader left; the command is stopped after runOnDemandCloseAfter.
    with trio.fail_after(15):
        await demand.done.wait()
    await wait_for(path, lambda p: not p.ready)
    assert "demand" not in path.hooks
    assert ready_file.read_text().split() == ["camera1", "rtspSession", str(standin.ports.rtsp)]
