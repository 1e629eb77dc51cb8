"""Unmodified Debian V4L2 programs against the emulated device, as subprocesses.

They inherit LD_PRELOAD and CAMSVC_EMU_DIR from this process. Each test asserts real
output: formats listed, decodable JPEGs of the right size, frame counters that read back.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from tests.emulator import v4l2
from tests.emulator.control import EmulatedCamera, decode_sequence

#: Bound on one program run; generous for a loaded 2-core box.
RUN_TIMEOUT_S = 60.0


def need(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a program with this process's environment; fail the test if it fails."""
    result = subprocess.run(
        [str(a) for a in args],
        env=os.environ.copy(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr}"
    return result


def split_jpegs(data: bytes) -> list[bytes]:
    """Cut a concatenation of whole JPEG frames at their EOI markers."""
    parts = data.split(b"\xff\xd9")
    assert parts[-1] == b"", "the stream does not end with a whole frame"
    return [p + b"\xff\xd9" for p in parts[:-1]]


def decoded(path: Path) -> Image.Image:
    """The whole image at path, decoded (raises if it is not a valid image)."""
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


class TestV4l2Ctl:
    def test_all_describes_a_uvc_camera(self, live_camera: EmulatedCamera) -> None:
        """--all: driver, caps, input, format, rate and the control classes."""
        need("v4l2-ctl")
        out = run("v4l2-ctl", "-d", live_camera.path, "--all").stdout
        for expected in [
            "Driver name      : uvcvideo",
            "Card type        : Emulated Camera",
            "Video Capture",
            "Streaming",
            "Video input : 0 (Camera 1: ok)",
            "Pixel Format      : 'MJPG' (Motion-JPEG)",
            "Width/Height      : 640/480",
            "Frames per second: 30.000 (30/1)",
            "User Controls",
            "Camera Controls",
            "brightness 0x00980900 (int)",
            "power_line_frequency 0x00980918 (menu)",
            "auto_exposure 0x009a0901 (menu)",
        ]:
            assert expected in out, f"{expected!r} missing from:\n{out}"

    def test_list_formats_ext(self, live_camera: EmulatedCamera) -> None:
        """--list-formats-ext: three formats, three sizes each, three rates each."""
        need("v4l2-ctl")
        out = run("v4l2-ctl", "-d", live_camera.path, "--list-formats-ext").stdout
        assert "'MJPG' (Motion-JPEG, compressed)" in out
        assert "'YUYV' (YUYV 4:2:2)" in out
        assert "'NV12' (Y/CbCr 4:2:0)" in out
        for size in ["640x480", "1280x720", "1920x1080"]:
            assert out.count(f"Size: Discrete {size}") == 3, out
        for rate in ["60.000 fps", "30.000 fps", "15.000 fps"]:
            assert out.count(rate) == 9, out

    def test_metadata_node(self, emu_dir: Path) -> None:
        """A metadata node: v4l2-ctl sees Metadata Capture and the UVCH format."""
        need("v4l2-ctl")
        meta = EmulatedCamera(emu_dir, 5, kind="metadata")
        meta.plug()
        out = run("v4l2-ctl", "-d", meta.path, "--all").stdout
        assert "Metadata Capture" in out.split("Device Caps", 1)[1]
        assert "'UVCH'" in out

    def test_stream_mmap_mjpeg_to_a_file(self, live_camera: EmulatedCamera, tmp_path: Path) -> None:
        """--stream-mmap --stream-count 3: three whole JPEGs with rising counters."""
        need("v4l2-ctl")
        out = tmp_path / "frames.mjpeg"
        run(
            "v4l2-ctl",
            "-d",
            live_camera.path,
            "--stream-mmap",
            "--stream-count",
            "3",
            "--stream-to",
            out,
        )
        frames = split_jpegs(out.read_bytes())
        assert len(frames) == 3
        counters = []
        for n, jpeg in enumerate(frames):
            path = tmp_path / f"{n}.jpg"
            path.write_bytes(jpeg)
            image = decoded(path)
            assert image.size == (640, 480)
            counters.append(decode_sequence(image, 640, 480))
        assert counters == sorted(counters) and len(set(counters)) == 3

    def test_stream_mmap_yuyv_720p(self, live_camera: EmulatedCamera, tmp_path: Path) -> None:
        """Raw frames: exactly sizeimage bytes each, the counter in the luma."""
        need("v4l2-ctl")
        out = tmp_path / "frames.yuyv"
        run(
            "v4l2-ctl",
            "-d",
            live_camera.path,
            "--set-fmt-video=width=1280,height=720,pixelformat=YUYV",
            "--stream-mmap",
            "--stream-count=2",
            f"--stream-to={out}",
        )
        data = out.read_bytes()
        size = 1280 * 720 * 2
        assert len(data) == 2 * size
        luma = [
            Image.frombytes("L", (1280, 720), data[i * size : (i + 1) * size : 2]) for i in (0, 1)
        ]
        first, second = (decode_sequence(img.convert("RGB"), 1280, 720) for img in luma)
        assert second > first

    def test_v4l2_compliance_passes(self, live_camera: EmulatedCamera) -> None:
        """v4l2-compliance -s (streaming included) finds no failure on a capture node."""
        need("v4l2-compliance")
        result = subprocess.run(
            ["v4l2-compliance", "-d", str(live_camera.path), "-s"],
            env=os.environ.copy(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S * 2,
            check=False,
        )
        summary = [line for line in result.stdout.splitlines() if line.startswith("Total for")]
        assert summary and ", Failed: 0," in summary[0], result.stdout + result.stderr
        assert result.returncode == 0, result.stdout

    def test_a_second_program_gets_ebusy(self, camera: EmulatedCamera, tmp_path: Path) -> None:
        """While this process streams, v4l2-ctl in another process cannot."""
        need("v4l2-ctl")
        with v4l2.streaming(camera.path):
            result = subprocess.run(
                ["v4l2-ctl", "-d", str(camera.path), "--stream-mmap", "--stream-count=1"],
                env=os.environ.copy(),
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
        # v4l2-ctl reports the failed ioctl but still exits 0.
        assert "VIDIOC_REQBUFS returned -1 (Device or resource busy)" in result.stderr, result


class TestFfmpeg:
    @pytest.mark.parametrize(
        ("input_format", "size"),
        [("mjpeg", (640, 480)), ("yuyv422", (640, 480)), ("nv12", (1280, 720))],
    )
    def test_one_frame_to_jpeg(
        self,
        live_camera: EmulatedCamera,
        tmp_path: Path,
        input_format: str,
        size: tuple[int, int],
    ) -> None:
        """ffmpeg -f v4l2 ... -frames:v 1 out.jpg: a decodable JPEG with a counter."""
        need("ffmpeg")
        out = tmp_path / "out.jpg"
        run(
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "v4l2",
            "-input_format",
            input_format,
            "-video_size",
            f"{size[0]}x{size[1]}",
            "-i",
            live_camera.path,
            "-frames:v",
            "1",
            "-q:v",
            "3",
            "-y",
            out,
        )
        image = decoded(out)
        assert image.size == size
        assert decode_sequence(image, *size) >= 0


def test_ffmpeg_decodes_a_camera_without_huffman_tables(
    live_camera: EmulatedCamera, tmp_path: Path
) -> None:
    """The no_dht fault is what real DHT-less cameras send: ffmpeg still decodes it."""
    need("ffmpeg")
    live_camera.inject("no_dht")
    out = tmp_path / "out.png"
    run(
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "v4l2",
        "-input_format",
        "mjpeg",
        "-i",
        live_camera.path,
        "-frames:v",
        "1",
        "-y",
        out,
    )
    image = decoded(out)
    assert decode_sequence(image, *image.size) >= 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_snapshot(port: int, timeout: float, *, online: bool = True) -> bytes:
    """GET /snapshot until its online state is `online`, within timeout seconds.

    Without a device frame ustreamer answers 200 with a blank placeholder picture and
    `X-UStreamer-Online: false`; a frame from the device says `true`.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/snapshot")
            response = conn.getresponse()
            body = response.read()
            state = response.getheader("X-UStreamer-Online")
            if response.status == 200 and state == ("true" if online else "false"):
                return body
            last = f"HTTP {response.status}, online={state}"
        except OSError as exc:
            last = repr(exc)
        finally:
            conn.close()
        time.sleep(0.05)  # a poll interval, not a wait for readiness
    raise AssertionError(f"no snapshot from ustreamer within {timeout} s: {last}")


@contextmanager
def ustreamer(node: Path, *args: str) -> Iterator[int]:
    """Run ustreamer on node on a loopback port; yields the port, stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        ["ustreamer", "--device", str(node), "--host", "127.0.0.1", "--port", str(port), *args],
        env=os.environ.copy(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


class TestUstreamer:
    @pytest.mark.parametrize(
        "args", [(), ("--format", "MJPEG", "--encoder", "HW")], ids=["yuyv-cpu", "mjpeg-hw"]
    )
    def test_snapshot(
        self, live_camera: EmulatedCamera, tmp_path: Path, args: tuple[str, ...]
    ) -> None:
        """ustreamer's /snapshot is a 640x480 JPEG of the emulated camera's picture."""
        need("ustreamer")
        with ustreamer(live_camera.path, "--resolution", "640x480", *args) as port:
            body = get_snapshot(port, RUN_TIMEOUT_S)
        path = tmp_path / "snapshot.jpg"
        path.write_bytes(body)
        image = decoded(path)
        assert image.size == (640, 480)
        assert decode_sequence(image, 640, 480) >= 0

    def test_unplug_and_replug(self, live_camera: EmulatedCamera) -> None:
        """ustreamer notices the unplug (goes offline) and streams again after replug."""
        need("ustreamer")
        with ustreamer(live_camera.path, "--resolution", "640x480") as port:
            get_snapshot(port, RUN_TIMEOUT_S)
            live_camera.unplug()
            get_snapshot(port, RUN_TIMEOUT_S, online=False)
            live_camera.plug()
            get_snapshot(port, RUN_TIMEOUT_S)
