"""The emulated device as a program sees it through libc: identity, formats, controls,
streaming on the manual clock, fd identity, and the pass-through of everything else."""

from __future__ import annotations

import errno
import fcntl
import io
import os
import select
import stat
import struct
import threading
import time
from pathlib import Path

import pytest
import trio
from PIL import Image

from tests.emulator import v4l2
from tests.emulator.control import EmulatedCamera, decode_sequence

FORMATS = ["MJPG", "YUYV", "NV12"]
SIZES = [(640, 480), (1280, 720), (1920, 1080)]
RATES = [(1, 60), (1, 30), (1, 15)]


class TestIdentity:
    def test_querycap_answers_like_a_uvc_camera(self, camera: EmulatedCamera) -> None:
        """driver uvcvideo, the card name given, a USB bus, capture + streaming caps."""
        with v4l2.open_node(camera.path) as fd:
            cap = v4l2.querycap(fd)
        assert (cap.driver, cap.card) == ("uvcvideo", "Emulated Camera")
        assert cap.bus_info.startswith("usb-")
        assert cap.device_caps & v4l2.CAP_VIDEO_CAPTURE
        assert cap.device_caps & v4l2.CAP_STREAMING
        assert not cap.device_caps & v4l2.CAP_META_CAPTURE
        assert cap.capabilities & v4l2.CAP_DEVICE_CAPS

    def test_metadata_node_is_not_a_capture_device(self, emu_dir: Path) -> None:
        """A metadata node says META_CAPTURE, lists UVCH and refuses capture formats."""
        meta = EmulatedCamera(emu_dir, 3, kind="metadata")
        meta.plug()
        with v4l2.open_node(meta.path) as fd:
            cap = v4l2.querycap(fd)
            assert cap.device_caps & v4l2.CAP_META_CAPTURE
            assert not cap.device_caps & v4l2.CAP_VIDEO_CAPTURE
            assert [f for f, _ in v4l2.formats(fd, v4l2.META_CAPTURE)] == ["UVCH"]
            assert v4l2.formats(fd) == []
            assert v4l2.ioctl_errno(fd, v4l2.G_FMT, struct.pack("<I", 1) + bytes(204)) == (
                errno.EINVAL
            )

    def test_node_stats_as_a_v4l2_character_device(self, camera: EmulatedCamera) -> None:
        """stat() says char device 81:N, as programs that detect V4L2 nodes expect."""
        st = os.stat(camera.path)
        assert stat.S_ISCHR(st.st_mode)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (81, 0)

    def test_formats_sizes_and_intervals(self, camera: EmulatedCamera) -> None:
        """MJPG, YUYV and NV12 at three discrete sizes, each at 60, 30 and 15 fps."""
        with v4l2.open_node(camera.path) as fd:
            assert [f for f, _ in v4l2.formats(fd)] == FORMATS
            for pixfmt in FORMATS:
                assert v4l2.frame_sizes(fd, pixfmt) == SIZES
                for w, h in SIZES:
                    assert v4l2.frame_rates(fd, pixfmt, w, h) == RATES
            assert v4l2.frame_sizes(fd, "XXXX") == []
            assert v4l2.frame_rates(fd, "YUYV", 641, 480) == []


class TestNegotiation:
    def test_s_fmt_snaps_to_offered_sizes_and_formats(self, camera: EmulatedCamera) -> None:
        """Nearest size, unknown fourcc -> the default format, sizes computed per format."""
        with v4l2.open_node(camera.path) as fd:
            assert v4l2.get_fmt(fd) == v4l2.PixFormat(640, 480, "MJPG", 0, 640 * 480 * 2)
            assert v4l2.set_fmt(fd, 641, 479, "YUYV") == v4l2.PixFormat(
                640, 480, "YUYV", 1280, 640 * 480 * 2
            )
            assert v4l2.set_fmt(fd, 1000, 700, "NV12") == v4l2.PixFormat(
                1280, 720, "NV12", 1280, 1280 * 720 * 3 // 2
            )
            assert v4l2.set_fmt(fd, 5000, 5000, "XXXX").pixfmt == "MJPG"

    def test_format_belongs_to_the_device_not_the_fd(self, camera: EmulatedCamera) -> None:
        """A format set and released on one fd is what the next open sees."""
        with v4l2.open_node(camera.path) as fd:
            v4l2.set_fmt(fd, 1920, 1080, "NV12")
        with v4l2.open_node(camera.path) as fd:
            assert v4l2.get_fmt(fd).pixfmt == "NV12"
            assert (v4l2.get_fmt(fd).width, v4l2.get_fmt(fd).height) == (1920, 1080)

    @pytest.mark.parametrize(
        ("asked", "got"), [((1, 25), (1, 30)), ((1, 100), (1, 60)), ((1, 10), (1, 15))]
    )
    def test_s_parm_picks_the_nearest_interval(
        self, camera: EmulatedCamera, asked: tuple[int, int], got: tuple[int, int]
    ) -> None:
        """S_PARM clamps to the nearest offered interval and says so."""
        with v4l2.open_node(camera.path) as fd:
            assert v4l2.set_rate(fd, *asked) == got

    def test_what_uvc_lacks_is_enotty(self, camera: EmulatedCamera) -> None:
        """No TV standards, no selection/crop, unknown ioctls: ENOTTY like uvcvideo."""
        with v4l2.open_node(camera.path) as fd:
            for request, size in [
                (v4l2.ENUMSTD, 72),
                (v4l2.G_STD, 8),
                (v4l2.G_SELECTION, 64),
                (v4l2.CROPCAP, 44),
                (v4l2.UNKNOWN_IOCTL, 16),
            ]:
                assert v4l2.ioctl_errno(fd, request, bytes(size)) == errno.ENOTTY, hex(request)

    def test_one_camera_input(self, camera: EmulatedCamera) -> None:
        """Input 0 is the camera; there is no input 1."""
        with v4l2.open_node(camera.path) as fd:
            buf = bytearray(80)
            fcntl.ioctl(fd, v4l2.ENUMINPUT, buf)
            assert bytes(buf[4:12]) == b"Camera 1"
            assert struct.unpack_from("<I", buf, 36)[0] == 2  # V4L2_INPUT_TYPE_CAMERA
            assert v4l2.ioctl_errno(fd, v4l2.ENUMINPUT, struct.pack("<I", 1) + bytes(76)) == (
                errno.EINVAL
            )
            current = bytearray(4)
            fcntl.ioctl(fd, v4l2.G_INPUT, current)
            assert struct.unpack("<i", current)[0] == 0


class TestControls:
    def test_brightness_is_an_integer_that_clamps(self, camera: EmulatedCamera) -> None:
        """QUERYCTRL gives the range; S_CTRL clamps like uvcvideo; G_CTRL reads it back."""
        with v4l2.open_node(camera.path) as fd:
            q = bytearray(68)
            struct.pack_into("<I", q, 0, v4l2.CID_BRIGHTNESS)
            fcntl.ioctl(fd, v4l2.QUERYCTRL, q)
            assert bytes(q[8:18]) == b"Brightness"
            assert struct.unpack_from("<iiii", q, 40) == (-64, 64, 1, 0)
            ctrl = bytearray(struct.pack("<Ii", v4l2.CID_BRIGHTNESS, 1000))
            fcntl.ioctl(fd, v4l2.S_CTRL, ctrl)
            assert struct.unpack("<Ii", ctrl)[1] == 64
        with v4l2.open_node(camera.path) as fd:
            ctrl = bytearray(struct.pack("<Ii", v4l2.CID_BRIGHTNESS, 0))
            fcntl.ioctl(fd, v4l2.G_CTRL, ctrl)
            assert struct.unpack("<Ii", ctrl)[1] == 64, "controls belong to the device"

    def test_power_line_frequency_is_a_menu(self, camera: EmulatedCamera) -> None:
        """QUERYMENU names the items; an index out of range is ERANGE on S_CTRL."""
        with v4l2.open_node(camera.path) as fd:
            menu = bytearray(44)
            struct.pack_into("<II", menu, 0, v4l2.CID_POWER_LINE_FREQUENCY, 1)
            fcntl.ioctl(fd, v4l2.QUERYMENU, menu)
            assert bytes(menu[8:13]) == b"50 Hz"
            bad = struct.pack("<Ii", v4l2.CID_POWER_LINE_FREQUENCY, 7)
            assert v4l2.ioctl_errno(fd, v4l2.S_CTRL, bad) == errno.ERANGE

    def test_next_ctrl_walks_every_control_once(self, camera: EmulatedCamera) -> None:
        """QUERYCTRL with NEXT_CTRL enumerates in id order and ends with EINVAL."""
        ids = []
        with v4l2.open_node(camera.path) as fd:
            last = 0
            while True:
                q = bytearray(68)
                struct.pack_into("<I", q, 0, last | v4l2.CTRL_FLAG_NEXT_CTRL)
                if v4l2.ioctl_errno(fd, v4l2.QUERYCTRL, q) == errno.EINVAL:
                    break
                fcntl.ioctl(fd, v4l2.QUERYCTRL, q)
                last = struct.unpack_from("<I", q, 0)[0]
                ids.append(last)
        assert ids == sorted(set(ids))
        assert v4l2.CID_BRIGHTNESS in ids and v4l2.CID_POWER_LINE_FREQUENCY in ids


class TestEventsAndPriority:
    def test_control_events(self, camera: EmulatedCamera) -> None:
        """SEND_INITIAL queues the state (POLLPRI); a change on another fd is an event."""
        with v4l2.open_node(camera.path) as fd, v4l2.open_node(camera.path) as other:
            sub = struct.pack("<III", v4l2.EVENT_CTRL, v4l2.CID_BRIGHTNESS, 1) + bytes(20)
            fcntl.ioctl(fd, v4l2.SUBSCRIBE_EVENT, sub)
            assert select.select([], [], [fd], 0)[2] == [fd]
            ev = bytearray(136)
            fcntl.ioctl(fd, v4l2.DQEVENT, ev)
            assert struct.unpack_from("<I", ev, 0)[0] == v4l2.EVENT_CTRL
            assert struct.unpack_from("<I", ev, 96)[0] == v4l2.CID_BRIGHTNESS
            assert v4l2.ioctl_errno(fd, v4l2.DQEVENT, bytes(136)) == errno.ENOENT
            assert select.select([], [], [fd], 0)[2] == []
            fcntl.ioctl(other, v4l2.S_CTRL, bytearray(struct.pack("<Ii", v4l2.CID_BRIGHTNESS, 5)))
            fcntl.ioctl(fd, v4l2.DQEVENT, ev)
            changes, _type, value = struct.unpack_from("<IIi", ev, 8)
            assert (changes & 1, value) == (1, 5)  # V4L2_EVENT_CTRL_CH_VALUE

    def test_record_priority_locks_out_other_handles(self, camera: EmulatedCamera) -> None:
        """S_PRIORITY(RECORD) on one fd: others see it in G_PRIORITY and get EBUSY."""
        with v4l2.open_node(camera.path) as fd, v4l2.open_node(camera.path) as other:
            prio = bytearray(4)
            fcntl.ioctl(other, v4l2.G_PRIORITY, prio)
            assert struct.unpack("<I", prio)[0] == 2
            fcntl.ioctl(fd, v4l2.S_PRIORITY, struct.pack("<I", 3))
            fcntl.ioctl(other, v4l2.G_PRIORITY, prio)
            assert struct.unpack("<I", prio)[0] == 3
            with pytest.raises(OSError) as exc:
                v4l2.set_fmt(other, 640, 480, "YUYV")
            assert exc.value.errno == errno.EBUSY
            v4l2.set_fmt(fd, 640, 480, "YUYV")
        with v4l2.open_node(camera.path) as fd:
            v4l2.set_fmt(fd, 640, 480, "NV12")  # the RECORD handle is closed


class TestPassThrough:
    def test_paths_outside_the_directory_are_plain_files(
        self, camera: EmulatedCamera, tmp_path: Path
    ) -> None:
        """A file named video0 elsewhere opens, stats and reads as the file it is."""
        other = tmp_path / "elsewhere"
        other.mkdir()
        (other / "video0").write_bytes(b"just a file")
        assert (other / "video0").read_bytes() == b"just a file"
        assert stat.S_ISREG(os.stat(other / "video0").st_mode)

    def test_an_fd_number_reused_for_a_file_is_not_the_device(
        self, camera: EmulatedCamera, tmp_path: Path
    ) -> None:
        """dup2 over the device fd (no close() we could see): the number is a file now."""
        plain = tmp_path / "plain"
        plain.write_bytes(b"file data")
        fd = os.open(camera.path, os.O_RDWR)
        other = os.open(plain, os.O_RDONLY)
        try:
            os.dup2(other, fd)
            assert os.read(fd, 100) == b"file data"
            assert v4l2.ioctl_errno(fd, v4l2.QUERYCAP, bytes(104)) == errno.ENOTTY
        finally:
            os.close(other)
            os.close(fd)

    def test_read_and_write_are_not_an_io_method(self, camera: EmulatedCamera) -> None:
        """uvcvideo has no read()/write(): EINVAL."""
        with v4l2.open_node(camera.path) as fd:
            with pytest.raises(OSError) as exc:
                os.read(fd, 8)
            assert exc.value.errno == errno.EINVAL
            with pytest.raises(OSError) as exc:
                os.write(fd, b"12345678")
            assert exc.value.errno == errno.EINVAL

    def test_the_directory_is_read_at_every_open(
        self, camera: EmulatedCamera, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Point CAMSVC_EMU_DIR elsewhere and the same path is a plain file again."""
        monkeypatch.setenv("CAMSVC_EMU_DIR", str(tmp_path / "nowhere"))
        with open(camera.path, "rb") as f:
            assert f.read(4) == b"CEMU"


class TestStreaming:
    def test_manual_clock_delivers_exactly_the_ticked_frames(self, camera: EmulatedCamera) -> None:
        """No frame before a tick; one tick, one frame; frames carry their sequence."""
        with v4l2.streaming(camera.path) as stream:
            assert not stream.wait_readable(0)
            assert stream.try_dequeue() is None
            camera.tick()
            first = stream.dequeue()
            now = time.clock_gettime(time.CLOCK_MONOTONIC)
            assert first.sequence == 0
            assert first.bytesused == 640 * 480 * 2
            assert first.flags & v4l2.BUF_FLAG_MAPPED
            assert first.flags & v4l2.BUF_FLAG_TIMESTAMP_MASK == v4l2.BUF_FLAG_TIMESTAMP_MONOTONIC
            assert not first.flags & v4l2.BUF_FLAG_ERROR
            assert now - 10 < first.timestamp <= now
            assert stream.try_dequeue() is None
            camera.tick(3)
            rest = [stream.dequeue() for _ in range(3)]
        assert [f.sequence for f in rest] == [1, 2, 3]
        assert [decode_sequence(v4l2.to_image(f, "YUYV", 640, 480), 640, 480) for f in rest] == [
            1,
            2,
            3,
        ]
        assert first.timestamp <= rest[0].timestamp <= rest[1].timestamp <= rest[2].timestamp

    @pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
    @pytest.mark.parametrize("pixfmt", FORMATS)
    def test_every_format_and_size_carries_the_sequence(
        self, camera: EmulatedCamera, pixfmt: str, size: tuple[int, int]
    ) -> None:
        """Frames decode (MJPEG: a real JPEG) and the pattern says the buffer's sequence."""
        w, h = size
        with v4l2.streaming(camera.path, w, h, pixfmt) as stream:
            camera.tick(2)
            frames = [stream.dequeue(), stream.dequeue()]
        for frame in frames:
            image = v4l2.to_image(frame, pixfmt, w, h)
            assert image.size == (w, h)
            assert decode_sequence(image, w, h) == frame.sequence
            if pixfmt == "MJPG":
                assert frame.data[:2] == b"\xff\xd8" and frame.data[-2:] == b"\xff\xd9"
                assert b"\xff\xc4" in frame.data[: frame.data.index(b"\xff\xda")], "DHT"
            else:
                assert frame.bytesused == (w * h * 2 if pixfmt == "YUYV" else w * h * 3 // 2)
        assert [f.sequence for f in frames] == [0, 1]

    @pytest.mark.parametrize("scale", [2, 4])
    def test_the_counter_survives_jpeg_q50_and_downscaling(
        self, camera: EmulatedCamera, scale: int
    ) -> None:
        """What a snapshot pipeline does to a frame leaves the counter readable."""
        with v4l2.streaming(camera.path, 1280, 720, "YUYV") as stream:
            camera.tick(6)
            frame = [stream.dequeue() for _ in range(4)][-1]
        small = v4l2.to_image(frame, "YUYV", 1280, 720).resize((1280 // scale, 720 // scale))
        out = io.BytesIO()
        small.save(out, "JPEG", quality=50)
        with Image.open(io.BytesIO(out.getvalue())) as decoded:
            assert decode_sequence(decoded.convert("RGB"), *decoded.size) == frame.sequence == 3

    def test_frames_without_a_queued_buffer_are_lost_but_counted(
        self, camera: EmulatedCamera
    ) -> None:
        """4 buffers, 6 frames: two are lost, and the next frame says sequence 6."""
        with v4l2.streaming(camera.path, count=4) as stream:
            camera.tick(6)
            held = [stream.dequeue(requeue=False) for _ in range(4)]
            assert [f.sequence for f in held] == [0, 1, 2, 3]
            for frame in held:
                stream.queue(frame.index)
            camera.tick()
            assert stream.dequeue().sequence == 6

    def test_blocking_dqbuf_waits_for_a_frame(self, camera: EmulatedCamera) -> None:
        """Without O_NONBLOCK, DQBUF sleeps until the camera delivers."""
        result: dict[str, int] = {}
        with v4l2.streaming(camera.path) as stream:
            flags = fcntl.fcntl(stream.fd, fcntl.F_GETFL)
            fcntl.fcntl(stream.fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)

            def dequeue() -> None:
                buf = v4l2.v4l2_buffer()
                fcntl.ioctl(stream.fd, v4l2.DQBUF, buf)
                result["sequence"] = struct.unpack_from("<I", buf, 56)[0]

            waiter = threading.Thread(target=dequeue)
            waiter.start()
            camera.tick()
            waiter.join(v4l2.WAIT_S)
            assert not waiter.is_alive(), "blocking DQBUF never returned"
        assert result == {"sequence": 0}

    def test_poll_before_streamon_reports_at_once(self, camera: EmulatedCamera) -> None:
        """vb2: polling a queue that is not streaming returns at once (DQBUF: EINVAL)."""
        with v4l2.open_node(camera.path) as fd:
            assert select.select([fd], [], [], 0)[0] == [fd]
            assert v4l2.ioctl_errno(fd, v4l2.DQBUF, v4l2.v4l2_buffer()) == errno.EINVAL
            v4l2.request_buffers(fd, 2)
            assert v4l2.ioctl_errno(fd, v4l2.DQBUF, v4l2.v4l2_buffer()) == errno.EINVAL

    def test_select_never_reports_a_capture_node_writable(self, camera: EmulatedCamera) -> None:
        """An eventfd is always writable; a capture node is not (ustreamer relies on it)."""
        with v4l2.streaming(camera.path) as stream:
            assert select.select([], [stream.fd], [], 0)[1] == []
            poller = select.poll()
            poller.register(stream.fd, select.POLLOUT)
            assert poller.poll(0) == []

    async def test_trio_wait_readable_wakes_on_a_frame(self, camera: EmulatedCamera) -> None:
        """The fd is a real eventfd: Trio's epoll wakes when a frame is ready."""
        with v4l2.streaming(camera.path) as stream:
            with trio.fail_after(v4l2.WAIT_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.lowlevel.wait_readable, stream.fd)
                    await trio.testing.wait_all_tasks_blocked()
                    camera.tick()
            frame = stream.try_dequeue()
        assert frame is not None and frame.sequence == 0

    def test_the_live_clock_runs_at_the_configured_rate(self, live_camera: EmulatedCamera) -> None:
        """Without the manual clock frames just arrive, in order."""
        with v4l2.open_node(live_camera.path) as fd:
            v4l2.set_rate(fd, 1, 60)
        with v4l2.streaming(live_camera.path) as stream:
            frames = [stream.dequeue() for _ in range(5)]
        sequences = [f.sequence for f in frames]
        assert sequences == sorted(sequences) and len(set(sequences)) == 5


class TestOwnership:
    def test_a_second_fd_cannot_take_a_streaming_device(self, camera: EmulatedCamera) -> None:
        """S_FMT, REQBUFS and STREAMON from another fd: EBUSY; free again after close."""
        with v4l2.streaming(camera.path) as stream, v4l2.open_node(camera.path) as other:
            fmt = struct.pack("<I", 1) + bytes(4) + struct.pack("<IIII", 640, 480, 0, 1)
            assert v4l2.ioctl_errno(other, v4l2.S_FMT, fmt + bytes(208 - len(fmt))) == errno.EBUSY
            assert v4l2.ioctl_errno(stream.fd, v4l2.S_FMT, fmt + bytes(208 - len(fmt))) == (
                errno.EBUSY
            )
            reqbufs = struct.pack("<III", 2, 1, 1) + bytes(8)
            assert v4l2.ioctl_errno(other, v4l2.REQBUFS, reqbufs) == errno.EBUSY
            assert v4l2.ioctl_errno(other, v4l2.STREAMON, struct.pack("<I", 1)) == errno.EBUSY
            v4l2.querycap(other)  # queries stay allowed
        with v4l2.open_node(camera.path) as fd:
            assert v4l2.request_buffers(fd, 2) == 2


def test_fstat_on_an_open_node_agrees_with_stat(camera: EmulatedCamera) -> None:
    """os.fstat of the device fd: the same character device 81:N."""
    with v4l2.open_node(camera.path) as fd:
        st = os.fstat(fd)
    assert stat.S_ISCHR(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (81, 0)
