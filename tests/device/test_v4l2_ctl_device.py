"""v4l2-ctl, a third-party V4L2 program, against the lane's device.

In the vivid lane this proves the guest sees real kernel nodes; in the emulator lane it
proves the LD_PRELOAD device speaks the ABI well enough for a program camsvc did not write.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.device,
    pytest.mark.skipif(shutil.which("v4l2-ctl") is None, reason="v4l2-ctl (v4l-utils) missing"),
]


def v4l2_ctl(node: Path, *args: str) -> str:
    """Run v4l2-ctl on node and return its stdout; fail the test with its output if it fails."""
    result = subprocess.run(
        ["v4l2-ctl", "-d", str(node), *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"v4l2-ctl {args} exited {result.returncode}:\n{result}"
    return result.stdout


def test_every_node_is_a_streaming_capture_device(lane):
    nodes = lane.nodes()
    assert nodes
    for node in nodes:
        info = v4l2_ctl(node, "--info")
        caps = info.split("Device Caps", 1)[-1]
        assert "Video Capture" in caps, info
        assert "Streaming" in caps, info


def test_yuyv_640x480_is_offered_as_a_discrete_size(lane):
    formats = v4l2_ctl(lane.nodes()[0], "--list-formats-ext")
    yuyv = re.search(r"'YUYV'.*?(?=\n\s*\[\d+\]|\Z)", formats, re.S)
    assert yuyv, formats
    assert "Size: Discrete 640x480" in yuyv.group(0), yuyv.group(0)


def test_mmap_streaming_delivers_whole_frames(lane, tmp_path):
    raw = tmp_path / "frames.yuyv"
    v4l2_ctl(
        lane.nodes()[0],
        "--set-fmt-video=width=640,height=480,pixelformat=YUYV",
        "--stream-mmap",
        "--stream-count=3",
        f"--stream-to={raw}",
    )
    assert raw.stat().st_size == 3 * 640 * 480 * 2
