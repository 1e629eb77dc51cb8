"""EncodeAhead: each new frame's JPEG made as it arrives, snapshots still of the newest."""

from __future__ import annotations

import trio
import trio.testing

from camsvc.capture import Camera, EncodeAhead, wait_frame
from tests.capture.helpers import WAIT_S, pixel_sequence


async def _announce_and_wait(ahead: EncodeAhead) -> None:
    """Tell the encoder a frame arrived and wait until it has made that frame's JPEG."""
    ahead.frame_arrived()
    await trio.testing.wait_all_tasks_blocked()  # the encoder is in its worker thread
    await ahead.jpeg()  # waits for that encode


async def test_frame_made_ahead_is_served_without_encoding(node):
    """A frame encoded on arrival is the snapshot's answer, not encoded again."""
    with Camera(node.path) as cam:
        cam.open(1920, 1080, fourcc="YUYV")
        ahead = EncodeAhead(cam, quality=80)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ahead.run)
            with trio.fail_after(WAIT_S):
                for expected in range(3):
                    node.tick(1)
                    assert (await wait_frame(cam)).sequence == expected
                    await _announce_and_wait(ahead)
                    assert ahead.made == expected + 1
                    jpeg = await ahead.jpeg()
                    assert jpeg is cam.made_jpeg(80)
                    assert jpeg.sequence == expected
                    assert pixel_sequence(jpeg.data) == expected
            assert ahead.made == 3
            nursery.cancel_scope.cancel()


async def test_in_flight_encode_of_the_newest_frame_is_awaited(node):
    """Asked while the newest frame is being encoded, the snapshot waits for that encode
    instead of starting a second one."""
    with Camera(node.path) as cam:
        cam.open(1920, 1080, fourcc="YUYV")
        ahead = EncodeAhead(cam)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ahead.run)
            with trio.fail_after(WAIT_S):
                node.tick(1)
                await wait_frame(cam)
                ahead.frame_arrived()
                await trio.testing.wait_all_tasks_blocked()
                # The encoder task now waits on its worker thread; its result only lands
                # when that task runs again, so nothing is "made" yet.
                assert cam.made_jpeg() is None
                jpeg = await ahead.jpeg()
            assert ahead.made == 1
            assert jpeg.sequence == 0 and pixel_sequence(jpeg.data) == 0
            assert cam.made_jpeg() is jpeg
            nursery.cancel_scope.cancel()


async def test_newest_frame_not_yet_encoded_is_encoded_now(node):
    """A frame the encoder has not been told about is encoded on request, and the encoder
    then skips it (it is already made)."""
    with Camera(node.path) as cam:
        cam.open(640, 480, fourcc="YUYV")
        ahead = EncodeAhead(cam)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ahead.run)
            with trio.fail_after(WAIT_S):
                node.tick(1)
                await wait_frame(cam)
                await _announce_and_wait(ahead)
                node.tick(1)  # frame 1: read by jpeg() itself, never announced
                while (frame := cam.latest) is None or frame.sequence < 1:
                    await wait_frame(cam)
                jpeg = await ahead.jpeg()
                assert jpeg.sequence == 1 and pixel_sequence(jpeg.data) == 1
                ahead.frame_arrived()
                await trio.testing.wait_all_tasks_blocked()
            assert ahead.made == 1
            nursery.cancel_scope.cancel()


async def test_other_settings_are_encoded_on_request(node):
    """made_jpeg() only answers for the settings the JPEG was made with."""
    with Camera(node.path) as cam:
        cam.open(1920, 1080, fourcc="YUYV")
        ahead = EncodeAhead(cam, quality=80)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ahead.run)
            with trio.fail_after(WAIT_S):
                node.tick(1)
                await wait_frame(cam)
                await _announce_and_wait(ahead)
            assert cam.made_jpeg(80) is not None
            assert cam.made_jpeg(81) is None
            assert cam.made_jpeg(80, max_size=(960, 540)) is None
            nursery.cancel_scope.cancel()
