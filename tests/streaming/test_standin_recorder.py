"""The stand-in's recorder starts a segment at the first key frame after `record` turned on,
as MediaMTX's in-process recorder does, however long its ffmpeg takes to connect."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from camsvc.streaming.standin import StandIn
from camsvc.streaming.standin._rtsp import TAP_PACKETS, Reader, RecorderTap, Track
from tests.streaming.test_standin_media import HEIGHT, WIDTH, ffprobe, publisher_cmd, wait_for

H264 = [Track(0, "trackID=0", "H264")]


def rtp(nal_header: int, *payload: int) -> bytes:
    """An RTP packet (12-byte header, no CSRC) carrying one H.264 NAL unit."""
    return bytes([0x80, 96]) + bytes(10) + bytes([nal_header, *payload])


IDR = rtp(0x65, 0x88)  # nal_unit_type 5
SPS = rtp(0x67, 0x42)  # nal_unit_type 7
SLICE = rtp(0x41, 0x9A)  # nal_unit_type 1


class _Conn:
    session_id = "s1"
    user_agent = "mediamtx-standin-recorder"


class _Path:
    def __init__(self) -> None:
        self.tracks = H264
        self.first_samples = 0

    def recorder_first_sample(self) -> None:
        self.first_samples += 1


def test_tap_holds_from_the_first_key_frame() -> None:
    """Packets before the first key frame (or its SPS) are not held; from it on all are,
    and the first sample's time is the key frame's arrival."""
    tap = RecorderTap(H264)
    tap.offer(0, False, SLICE)
    tap.offer(0, True, b"rtcp-before")
    assert not tap.started and tap.packets == [] and tap.first_sample_at is None
    tap.offer(0, False, SPS)
    assert tap.started and tap.first_sample.is_set() and tap.first_sample_at is not None
    first = tap.first_sample_at
    tap.offer(0, False, IDR)
    tap.offer(0, True, b"rtcp-after")
    assert tap.packets == [(0, False, SPS), (0, False, IDR), (0, True, b"rtcp-after")]
    assert tap.first_sample_at == first


def test_tap_is_bounded() -> None:
    """A tap nobody takes stops holding at TAP_PACKETS and counts the rest."""
    tap = RecorderTap(H264)
    for _ in range(TAP_PACKETS + 3):
        tap.offer(0, False, IDR)
    assert len(tap.packets) == TAP_PACKETS and tap.dropped == 3


def test_tap_without_key_frames_starts_at_once() -> None:
    """A track with no key frames to wait for (M-JPEG) is held from its first packet."""
    tap = RecorderTap([Track(0, "trackID=0", "M-JPEG")])
    tap.offer(0, False, b"jpeg")
    assert tap.started and tap.packets == [(0, False, b"jpeg")] and tap.first_sample.is_set()


async def test_recorder_session_takes_the_tap() -> None:
    """The recorder's reader sends what the tap held first, framed on its own channels."""
    tap = RecorderTap(H264)
    tap.offer(0, False, IDR)
    tap.offer(0, True, b"sr")
    path = _Path()
    reader = Reader(_Conn(), path, {0: 4})  # type: ignore[arg-type]
    assert reader.hidden and not reader.started
    reader.take(tap)
    assert reader.started and tap.packets == []
    reader.offer(0, False, SLICE)  # after the hand-over: no key frame to wait for
    frames = [reader.receive.receive_nowait() for _ in range(3)]
    assert frames[0] == b"$\x04" + len(IDR).to_bytes(2, "big") + IDR
    assert frames[1] == b"$\x05\x00\x02sr"
    assert frames[2].endswith(SLICE)
    assert path.first_samples == 3


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
async def test_segment_starts_before_a_slow_recorder_connects(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """With a recorder ffmpeg that takes 2 s to start, the segment still begins at the first
    key frame after `record` turned on (key frames every 1/3 s) and holds what came since:
    the file is named by that time and its video lasts from it to the stop."""
    launched = tmp_path / "launched"
    slow = tmp_path / "slow-ffmpeg"
    slow.write_text(f'#!/bin/sh\nsleep 2\ndate +%s.%N > {launched}\nexec ffmpeg "$@"\n')
    slow.chmod(0o755)
    record_path = str(tmp_path / "rec" / "%path" / "%path_%Y-%m-%d_%H-%M-%S-%f")
    standin = StandIn(paths={"camera0": {"recordPath": record_path}}, ffmpeg=str(slow))
    ports = await nursery.start(standin.run)
    url = f"rtsp://127.0.0.1:{ports.rtsp}/camera0"
    publisher = await trio.lowlevel.open_process(
        publisher_cmd(url).split(), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        path = standin.paths["camera0"]
        await wait_for(path, lambda p: p.ready)
        record_on = dt.datetime.now().astimezone()
        assert standin.handle("PATCH", "/v3/config/paths/patch/camera0", b'{"record":true}')[0]
        folder = tmp_path / "rec" / "camera0"
        with trio.fail_after(20):
            while not folder.is_dir() or not os.listdir(folder):  # noqa: ASYNC110
                await trio.sleep(0.05)
        [file] = folder.iterdir()
        start = dt.datetime.strptime(file.stem, "camera0_%Y-%m-%d_%H-%M-%S-%f").astimezone()
        connected = dt.datetime.fromtimestamp(float(launched.read_text())).astimezone()
        assert record_on <= start < connected
        await trio.sleep(1)
        assert standin.handle("PATCH", "/v3/config/paths/patch/camera0", b'{"record":false}')[0]
        stopped = dt.datetime.now().astimezone()
        with trio.fail_after(15):
            await path.recorder_stopped.wait()
    finally:
        publisher.kill()
        await publisher.wait()
    info = await ffprobe(str(file), "format=duration:stream=codec_name,width,height")
    assert info["streams"] == [{"codec_name": "h264", "width": WIDTH, "height": HEIGHT}]
    # Video from the segment's start to the stop, not from when ffmpeg connected.
    expected = (stopped - start).total_seconds()
    assert expected - 0.5 <= float(info["format"]["duration"]) <= expected + 0.5, info
