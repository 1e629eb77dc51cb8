"""Streaming: newest-frame reads, sequence and timestamps, freshness of the JPEG, Trio."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from camsvc.capture import Camera, CameraClosed, frames, snapshot, wait_frame
from tests.capture.helpers import WAIT_S, decode, pixel_sequence, wait_for_sequence


def test_no_frame_before_the_camera_delivers(node):
    """read_latest() never blocks: None until a frame arrives."""
    with Camera(node.path) as cam:
        cam.open()
        assert cam.read_latest() is None
        assert cam.latest is None


@pytest.mark.parametrize("fourcc", ["MJPG", "YUYV", "NV12"])
def test_snapshot_is_the_newest_frame(node, fourcc):
    """After several frames the JPEG shows the newest one (its pixel counter says so)."""
    with Camera(node.path) as cam:
        cam.open(640, 480, fourcc=fourcc)
        node.tick(1)
        first = wait_for_sequence(cam, 0)
        assert first.sequence == 0 and first.fourcc == fourcc
        node.tick(2)
        newest = wait_for_sequence(cam, 2)
        assert newest.sequence == 2
        assert newest.timestamp > first.timestamp
        jpeg = cam.jpeg(quality=90)
        assert (jpeg.sequence, jpeg.width, jpeg.height) == (2, 640, 480)
        assert pixel_sequence(jpeg.data) == 2
        assert cam.read_latest() is None  # nothing newer is pending
        stats = cam.stats()
        assert stats.frames >= 2 and stats.dropped == 0


@pytest.mark.parametrize(("fourcc", "max_size", "size"), [
    ("YUYV", (960, 540), (960, 540)),
    ("YUYV", (640, 360), (480, 270)),
    ("NV12", (480, 270), (480, 270)),
    ("MJPG", (960, 540), (960, 540)),
    ("YUYV", (100, 100), (240, 135)),
])  # fmt: skip
def test_downscaled_snapshot(node, fourcc, max_size, size):
    """max_size scales a 1920x1080 frame down by 2, 4 or 8 (8 at most)."""
    with Camera(node.path) as cam:
        cam.open(1920, 1080, fourcc=fourcc)
        node.tick(1)
        wait_for_sequence(cam, 0)
        jpeg = cam.jpeg(max_size=max_size)
        assert (jpeg.width, jpeg.height) == size
        assert decode(jpeg.data).size == size
        if size[0] >= 480:
            assert pixel_sequence(jpeg.data) == 0


def test_jpeg_waits_for_the_first_frame(make_camera):
    """jpeg() on a freshly opened free-running camera waits for its first frame."""
    node = make_camera()
    with Camera(node.path) as cam:
        cam.open(640, 480, fps=30, fourcc="YUYV")
        jpeg = cam.jpeg(timeout_s=WAIT_S)
        assert decode(jpeg.data).size == (640, 480)


def test_closed_camera(node):
    """Reading from a closed camera raises CameraClosed; close() twice is fine."""
    cam = Camera(node.path)
    cam.open()
    cam.close()
    cam.close()
    with pytest.raises(CameraClosed):
        cam.read_latest()
    with pytest.raises(CameraClosed):
        cam.jpeg()


async def test_trio_frame_loop(node):
    """frames() yields each new frame as the fd turns readable."""
    with Camera(node.path) as cam:
        cam.open(640, 480, fourcc="MJPG")
        seen = []
        with trio.fail_after(WAIT_S):
            node.tick(1)
            async for frame in frames(cam):
                seen.append(frame.sequence)
                if len(seen) == 3:
                    break
                node.tick(1)
        assert seen == [0, 1, 2]


async def test_trio_snapshot_encodes_in_a_thread(node):
    """snapshot() waits for a frame and encodes a 1080p YUYV frame off the event loop."""
    with Camera(node.path) as cam:
        cam.open(1920, 1080, fourcc="YUYV")
        with trio.fail_after(WAIT_S):
            node.tick(1)
            frame = await wait_frame(cam)
            job = cam.jpeg_job()
            assert job is not None and job.heavy
            jpeg = await snapshot(cam, quality=80)
        assert jpeg.sequence == frame.sequence == 0
        assert pixel_sequence(jpeg.data) == 0


async def test_wait_frame_is_cancellable(node):
    """A wait with no frame coming ends at the caller's timeout, leaving the camera usable."""
    with Camera(node.path) as cam:
        cam.open()
        with trio.move_on_after(0.2) as scope:
            await wait_frame(cam)
        assert scope.cancelled_caught
        node.tick(1)
        with trio.fail_after(WAIT_S):
            assert (await wait_frame(cam)).sequence == 0


def test_same_frame_is_encoded_once(node):
    """A second snapshot of the same frame at the same settings reuses the first JPEG."""
    with Camera(node.path) as cam:
        cam.open(640, 480, fourcc="YUYV")
        node.tick(1)
        wait_for_sequence(cam, 0)
        first = cam.jpeg(quality=70)
        assert cam.jpeg(quality=70) is first
        assert cam.jpeg(quality=71) is not first
        node.tick(1)
        wait_for_sequence(cam, 1)
        assert cam.jpeg(quality=70).sequence == 1


async def test_close_wakes_a_waiting_task(node):
    """Closing the camera from another task ends a pending wait with CameraClosed."""
    cam = Camera(node.path)
    cam.open()
    failures = []

    async def waiter() -> None:
        try:
            await wait_frame(cam)
        except CameraClosed as exc:
            failures.append(exc)

    with trio.fail_after(WAIT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            cam.close()
    assert len(failures) == 1


def test_frame_data_is_the_raw_frame(node):
    """frame_data() copies the newest frame as delivered: a whole YUYV picture."""
    with Camera(node.path) as cam:
        cam.open(640, 480, fourcc="YUYV")
        assert cam.frame_data() is None
        node.tick(1)
        frame = wait_for_sequence(cam, 0)
        data = cam.frame_data()
        assert data is not None and len(data) == frame.size >= 640 * 480 * 2
