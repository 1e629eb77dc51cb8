"""Every injectable fault of the emulated device, as a V4L2 program meets it."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct

import pytest
import trio

from tests.emulator import v4l2
from tests.emulator.control import FAULTS, EmulatedCamera, decode_sequence

#: How long "no frame" is watched for at 30 fps: 15 frame periods.
QUIET_S = 0.5


def jpeg_segments(data: bytes) -> list[int]:
    """The markers of a JPEG's header segments, SOI up to and including SOS."""
    assert data[:2] == b"\xff\xd8"
    markers, i = [0xD8], 2
    while data[i] == 0xFF and data[i + 1] != 0xDA:
        markers.append(data[i + 1])
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return [*markers, data[i + 1]]


def test_ebusy_refuses_to_hand_over_the_device(camera: EmulatedCamera) -> None:
    """As if another program owned the camera: S_FMT/REQBUFS/S_PARM say EBUSY."""
    camera.inject("ebusy")
    with v4l2.open_node(camera.path) as fd:
        v4l2.querycap(fd)
        with pytest.raises(OSError) as exc:
            v4l2.set_fmt(fd, 640, 480, "YUYV")
        assert exc.value.errno == errno.EBUSY
        with pytest.raises(OSError) as exc:
            v4l2.request_buffers(fd, 2)
        assert exc.value.errno == errno.EBUSY
        camera.inject(None)
        assert v4l2.request_buffers(fd, 2) == 2


def test_enospc_on_streamon(camera: EmulatedCamera) -> None:
    """Not enough USB bandwidth: STREAMON fails with ENOSPC, then works once cleared."""
    camera.inject("enospc_streamon")
    with pytest.raises(OSError) as exc, v4l2.streaming(camera.path):
        pass
    assert exc.value.errno == errno.ENOSPC
    camera.inject(None)
    with v4l2.streaming(camera.path) as stream:
        camera.tick()
        assert stream.dequeue().sequence == 0


def test_stall_stops_frames_until_cleared(live_camera: EmulatedCamera) -> None:
    """A stalled camera streams nothing (poll times out); clearing it resumes frames."""
    with v4l2.streaming(live_camera.path) as stream:
        before = stream.dequeue()
        live_camera.inject("stall")
        while stream.try_dequeue() is not None:
            pass
        assert not stream.wait_readable(QUIET_S), "a stalled camera delivered a frame"
        live_camera.inject(None)
        after = stream.dequeue()
    assert after.sequence > before.sequence


def test_stall_on_the_manual_clock_ignores_ticks(camera: EmulatedCamera) -> None:
    """Ticks during a stall produce nothing, not even a sequence number."""
    with v4l2.streaming(camera.path) as stream:
        camera.inject("stall")
        camera.tick(3)
        assert not stream.wait_readable(QUIET_S), "a stalled camera delivered a frame"
        camera.inject(None)
        camera.tick()
        # Had the emulator seen the 3 ticks only after the stall ended, they would be
        # frames 0..2 and this one 3: the first frame is 0 either way.
        frame = stream.dequeue()
    assert frame.sequence == 0


def test_no_dht_sends_mjpeg_without_huffman_tables(camera: EmulatedCamera) -> None:
    """Like many UVC cameras: no DHT segment, the standard tables implied; SOI..EOI."""
    with v4l2.streaming(camera.path, pixfmt="MJPG") as stream:
        camera.tick()
        normal = stream.dequeue()
        camera.inject("no_dht")
        camera.tick()
        bare = stream.dequeue()
    assert 0xC4 in jpeg_segments(normal.data)
    assert 0xC4 not in jpeg_segments(bare.data)
    assert bare.data[-2:] == b"\xff\xd9"
    assert not bare.flags & v4l2.BUF_FLAG_ERROR


@pytest.mark.parametrize("pixfmt", ["MJPG", "YUYV"])
def test_corrupt_frames_carry_the_error_flag(camera: EmulatedCamera, pixfmt: str) -> None:
    """V4L2_BUF_FLAG_ERROR on every frame while injected; clean frames after."""
    camera.inject("corrupt")
    with v4l2.streaming(camera.path, pixfmt=pixfmt) as stream:
        camera.tick()
        bad = stream.dequeue()
        camera.inject(None)
        camera.tick()
        good = stream.dequeue()
    assert bad.flags & v4l2.BUF_FLAG_ERROR
    assert not good.flags & v4l2.BUF_FLAG_ERROR
    assert decode_sequence(v4l2.to_image(good, pixfmt, 640, 480), 640, 480) == 1


def test_truncated_mjpeg_has_no_eoi(camera: EmulatedCamera) -> None:
    """A short transfer: half the bytes, SOI but no EOI, no error flag."""
    camera.inject("truncated")
    with v4l2.streaming(camera.path, pixfmt="MJPG") as stream:
        camera.tick()
        frame = stream.dequeue()
    assert frame.data[:2] == b"\xff\xd8"
    assert frame.data[-2:] != b"\xff\xd9"
    assert not frame.flags & v4l2.BUF_FLAG_ERROR


def test_truncated_raw_frames_are_short(camera: EmulatedCamera) -> None:
    """YUYV: bytesused is half of sizeimage."""
    camera.inject("truncated")
    with v4l2.streaming(camera.path, pixfmt="YUYV") as stream:
        camera.tick()
        assert stream.dequeue().bytesused == 640 * 480


def test_eio_wakes_the_waiter_and_fails_dqbuf(camera: EmulatedCamera) -> None:
    """The queue errors out: the fd turns readable and DQBUF/QBUF fail with EIO."""
    with v4l2.streaming(camera.path) as stream:
        assert not stream.wait_readable(0)
        camera.inject("eio")
        assert stream.wait_readable()
        assert v4l2.ioctl_errno(stream.fd, v4l2.DQBUF, v4l2.v4l2_buffer()) == errno.EIO
        camera.inject(None)
        camera.tick()
        assert stream.dequeue().sequence == 0


class TestUnplug:
    def test_unplug_while_streaming(self, camera: EmulatedCamera) -> None:
        """POLLERR|POLLHUP at once, ENODEV everywhere, mappings stay, open is ENOENT."""
        with v4l2.streaming(camera.path) as stream:
            camera.tick()
            stream.dequeue()
            camera.unplug()
            poller = select.poll()
            poller.register(stream.fd, select.POLLIN | select.POLLPRI)
            events = dict(poller.poll(v4l2.WAIT_S * 1000)).get(stream.fd, 0)
            assert events == select.POLLERR | select.POLLHUP | select.POLLPRI, hex(events)
            for request, arg in [
                (v4l2.DQBUF, v4l2.v4l2_buffer()),
                (v4l2.QUERYCAP, bytearray(104)),
                (v4l2.G_FMT, bytearray(struct.pack("<I", 1) + bytes(204))),
                (v4l2.STREAMOFF, bytearray(struct.pack("<I", 1))),
            ]:
                assert v4l2.ioctl_errno(stream.fd, request, arg) == errno.ENODEV, hex(request)
            with pytest.raises(OSError) as exc:
                os.read(stream.fd, 8)
            assert exc.value.errno == errno.ENODEV
            assert len(stream.maps[0][:16]) == 16
            with pytest.raises(FileNotFoundError):
                os.open(camera.path, os.O_RDWR)

    def test_replug_is_a_fresh_device_and_old_fds_stay_dead(self, camera: EmulatedCamera) -> None:
        """The old fd keeps ENODEV; a new open streams from default settings."""
        with v4l2.open_node(camera.path) as old:
            v4l2.set_fmt(old, 1280, 720, "NV12")
            camera.unplug()
            camera.plug()
            assert v4l2.ioctl_errno(old, v4l2.QUERYCAP, bytes(104)) == errno.ENODEV
            with v4l2.open_node(camera.path) as new:
                assert v4l2.get_fmt(new).pixfmt == "MJPG"
            with v4l2.streaming(camera.path) as stream:
                camera.tick()
                assert stream.dequeue().sequence == 0

    def test_a_blocked_dqbuf_returns_enodev(self, camera: EmulatedCamera) -> None:
        """A thread sleeping in blocking DQBUF wakes up with ENODEV on unplug."""
        import threading

        result: dict[str, int] = {}
        with v4l2.streaming(camera.path) as stream:
            flags = fcntl.fcntl(stream.fd, fcntl.F_GETFL)
            fcntl.fcntl(stream.fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)

            def dequeue() -> None:
                result["errno"] = v4l2.ioctl_errno(stream.fd, v4l2.DQBUF, v4l2.v4l2_buffer())

            waiter = threading.Thread(target=dequeue)
            waiter.start()
            camera.unplug()
            waiter.join(v4l2.WAIT_S)
            assert not waiter.is_alive()
        assert result == {"errno": errno.ENODEV}

    async def test_unplug_wakes_a_trio_waiter(self, camera: EmulatedCamera) -> None:
        """epoll (Trio's wait_readable) wakes when the node goes, without any frame."""
        with v4l2.streaming(camera.path) as stream:
            with trio.fail_after(v4l2.WAIT_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.lowlevel.wait_readable, stream.fd)
                    await trio.testing.wait_all_tasks_blocked()
                    camera.unplug()
            assert v4l2.ioctl_errno(stream.fd, v4l2.DQBUF, v4l2.v4l2_buffer()) == errno.ENODEV


def test_every_fault_name_is_accepted_and_others_are_not(camera: EmulatedCamera) -> None:
    """inject() takes exactly the documented names and None."""
    for fault in FAULTS:
        camera.inject(fault)
    with pytest.raises(ValueError, match="unknown fault"):
        camera.inject("melted")


def test_tick_needs_the_manual_clock(live_camera: EmulatedCamera) -> None:
    """tick() on a camera with its own clock is a test bug, said loudly."""
    with pytest.raises(RuntimeError, match="manual_clock"):
        live_camera.tick()


def test_decode_sequence_rejects_a_picture_without_a_counter() -> None:
    """A grey image has no valid check word."""
    with pytest.raises(ValueError, match="check word"):
        decode_sequence(bytes([128]) * (64 * 48 * 3), 64, 48)
