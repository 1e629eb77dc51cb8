"""The stand-in's recorder starts a segment at the first key frame after `record` turned on,
as MediaMTX's in-process recorder does, however long its ffmpeg takes to connect, and ends
it with every packet held or queued until then."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
import trio.testing

from camsvc.streaming.standin import StandIn
from camsvc.streaming.standin._rtsp import TAP_PACKETS, Reader, RecorderTap, Track
from camsvc.streaming.standin._segment import SegmentFile
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

    def __init__(self, user_agent: str) -> None:
        self.user_agent = user_agent


class _Path:
    tracks = H264


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
    """The recorder's reader (named by its tap's id) sends what the tap held first, framed
    on its own channels, then live packets; the tap holds nothing more once taken."""
    tap = RecorderTap(H264)
    tap.offer(0, False, IDR)
    tap.offer(0, True, b"sr")
    reader = Reader(_Conn(tap.user_agent), _Path(), {0: 4})  # type: ignore[arg-type]
    assert reader.hidden and reader.tap_id == tap.id and not reader.started
    reader.take(tap)
    assert reader.started and tap.packets == [] and tap.reader is reader
    reader.offer(0, False, SLICE)  # after the hand-over: no key frame to wait for
    tap.offer(0, False, SLICE)  # the reader has it already: not held twice
    assert tap.packets == []
    frames = [reader.receive.receive_nowait() for _ in range(3)]
    assert frames[0] == b"$\x04" + len(IDR).to_bytes(2, "big") + IDR
    assert frames[1] == b"$\x05\x00\x02sr"
    assert frames[2].endswith(SLICE)
    with pytest.raises(trio.WouldBlock):
        reader.receive.receive_nowait()


async def test_closed_tap_ends_the_session_after_what_it_held() -> None:
    """A segment that ends before its ffmpeg plays: the tap takes nothing more, and the
    session that takes it sends what was held, then its queue ends (the session closes)."""
    tap = RecorderTap(H264)
    tap.offer(0, False, IDR)
    tap.close()
    tap.offer(0, False, SLICE)
    assert tap.packets == [(0, False, IDR)]
    reader = Reader(_Conn(tap.user_agent), _Path(), {0: 0})  # type: ignore[arg-type]
    reader.take(tap)
    assert reader.finished
    reader.offer(0, False, SLICE)  # nothing after the end
    assert reader.receive.receive_nowait().endswith(IDR)
    with pytest.raises(trio.EndOfChannel):
        reader.receive.receive_nowait()


async def test_closing_a_taken_tap_finishes_its_session() -> None:
    """A segment ending while its session plays: what is queued is still sent, then the end."""
    tap = RecorderTap(H264)
    reader = Reader(_Conn(tap.user_agent), _Path(), {0: 0})  # type: ignore[arg-type]
    reader.take(tap)
    reader.offer(0, False, IDR)
    tap.close()
    reader.offer(0, False, SLICE)
    assert reader.receive.receive_nowait().endswith(IDR)
    with pytest.raises(trio.EndOfChannel):
        reader.receive.receive_nowait()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
async def test_segment_starts_before_a_slow_recorder_connects(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """With a recorder ffmpeg that takes 3 s to start, the segment still begins at the first
    key frame after `record` turned on (key frames every 1/3 s): its file is named by that
    time, and its video lasts from it to the stop."""
    launched = tmp_path / "launched"
    slow = tmp_path / "slow-ffmpeg"
    slow.write_text(f'#!/bin/sh\nsleep 3\ndate +%s.%N > {launched}\nexec ffmpeg "$@"\n')
    slow.chmod(0o755)
    record_path = str(tmp_path / "rec" / "%path" / "%path_%Y-%m-%d_%H-%M-%S-%f")
    reported = tmp_path / "duration"
    conf = {
        "recordPath": record_path,
        "runOnRecordSegmentComplete": f"sh -c 'echo $MTX_SEGMENT_DURATION > {reported}'",
    }
    standin = StandIn(paths={"camera0": conf}, ffmpeg=str(slow))
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
        with trio.fail_after(20):
            while not launched.exists() or not launched.read_text().strip():  # noqa: ASYNC110
                await trio.sleep(0.05)
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
    with trio.fail_after(10):
        # The hook runs in its own process; its output file is the only signal.
        while not reported.exists() or not reported.read_text().strip():  # noqa: ASYNC110
            await trio.sleep(0.05)
    # MTX_SEGMENT_DURATION counts from the first sample too (ffmpeg's draining adds a bit).
    assert expected - 0.5 <= float(reported.read_text()) <= expected + 1.5


async def test_segment_file_holds_output_until_created(tmp_path: Path, nursery) -> None:
    """Output that arrives before the first sample names the file is written first, then the
    rest, in order; the file is created (with its directory) when asked."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    segment = SegmentFile()
    done = trio.Event()

    async def copy() -> None:
        await segment.copy(receive)
        done.set()

    nursery.start_soon(copy)
    await send.send_all(b"init")
    await trio.testing.wait_all_tasks_blocked()
    target = tmp_path / "cam" / "seg.mp4"
    assert not target.parent.exists()
    await segment.create(target)
    await send.send_all(b"-frag1")
    await send.send_all(b"-frag2")
    await send.aclose()
    with trio.fail_after(5):
        await done.wait()
    assert await segment.close() == target
    assert target.read_bytes() == b"init-frag1-frag2"


async def test_segment_file_loses_nothing_when_cancelled(tmp_path: Path) -> None:
    """A copy cancelled mid-way (the recording stops) keeps what it had received; the next
    copy (draining ffmpeg) appends after it."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    segment = SegmentFile()
    target = tmp_path / "seg.mp4"
    await segment.create(target)
    await send.send_all(b"a")
    with trio.move_on_after(0.2):
        await segment.copy(receive)
    await send.send_all(b"b")
    await send.aclose()
    await segment.copy(receive)
    assert await segment.close() == target and target.read_bytes() == b"ab"


async def test_segment_file_without_data_is_removed(tmp_path: Path) -> None:
    """A segment that got nothing (ffmpeg failed after the first sample) leaves no file;
    one never created closes to None."""
    segment = SegmentFile()
    target = tmp_path / "seg.mp4"
    await segment.create(target)
    assert target.exists()
    assert await segment.close() is None and not target.exists()
    assert await SegmentFile().close() is None


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
async def test_segment_stopped_before_its_recorder_connects(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """`record` off after the first key frame but before the recorder's ffmpeg has even
    started: ffmpeg still gets what was held and writes a playable segment of it."""
    slow = tmp_path / "slow-ffmpeg"
    slow.write_text('#!/bin/sh\nsleep 1\nexec ffmpeg "$@"\n')
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
        assert standin.handle("PATCH", "/v3/config/paths/patch/camera0", b'{"record":true}')[0]
        with trio.fail_after(15):
            # Until the tap holds the whole first key frame (an RTP packet with the marker
            # bit ends it); the tap is the stand-in's own state: poll it, bounded.
            while not any(  # noqa: ASYNC110
                packet[1] & 0x80 for tap in path._taps.values() for _, _, packet in tap.packets
            ):
                await trio.sleep(0.01)
        assert standin.handle("PATCH", "/v3/config/paths/patch/camera0", b'{"record":false}')[0]
        with trio.fail_after(15):
            await path.recorder_stopped.wait()
    finally:
        publisher.kill()
        await publisher.wait()
    [file] = (tmp_path / "rec" / "camera0").iterdir()
    info = await ffprobe(str(file), "stream=codec_name,width,height")
    assert info["streams"] == [{"codec_name": "h264", "width": WIDTH, "height": HEIGHT}]


async def test_segment_file_write_error_ends_the_copy(tmp_path: Path) -> None:
    """A full disk (the file is /dev/full through a link) ends the copy with the error kept;
    what follows is dropped and closing does not raise (MediaMTX ends the segment)."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    target = tmp_path / "seg.mp4"
    target.symlink_to("/dev/full")
    segment = SegmentFile()
    await segment.create(target)
    await send.send_all(b"x" * 100_000)  # larger than the file buffer: written at once
    with trio.fail_after(5):
        await segment.copy(receive, until_failed=True)
    assert segment.failed is not None and segment.failed.errno == errno.ENOSPC
    await send.send_all(b"more")
    await send.aclose()
    await segment.copy(receive)  # drains, drops
    assert not segment.pending
    assert await segment.close() is None  # nothing written: the link is removed, not /dev/full
    assert not target.is_symlink() and Path("/dev/full").exists()
