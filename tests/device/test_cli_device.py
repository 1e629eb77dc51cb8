"""`camsvc devices` and `camsvc snapshot` as a user runs them, against the lane's device.

The commands run as subprocesses of the test: in the emulator lane they inherit LD_PRELOAD
and CAMSVC_EMU_DIR from the test process, in the vivid lane they open the kernel's nodes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.device

CLI_TIMEOUT = 60


def camsvc(*args: str | Path | int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the camsvc console script of this venv with args; never raises on failure."""
    script = Path(sys.executable).parent / "camsvc"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "camsvc"]
    return subprocess.run(
        [*cmd, *map(str, args)],
        cwd=cwd,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Assert the command succeeded, showing its output when it did not."""
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def decode_jpeg(path: Path) -> Image.Image:
    """Decode the whole JPEG at path and return it (raises if it is not a valid JPEG)."""
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as img:
        assert img.format == "JPEG"
        img.load()
        return img.copy()


def test_devices_lists_every_node(lane, tmp_path):
    nodes = lane.nodes()
    assert nodes, f"the {lane.name} lane has no device nodes"
    out = ok(camsvc("devices", "--dir", lane.device_dir, cwd=tmp_path)).stdout
    for node in nodes:
        assert str(node) in out, f"{node} missing from `camsvc devices`:\n{out}"


def test_snapshot_writes_a_jpeg_of_the_requested_size(lane, tmp_path):
    # 320x180 is neither vivid's power-on size (640x360) nor camsvc's default (640x480).
    node = lane.nodes()[-1]
    out = tmp_path / "out.jpg"
    ok(camsvc("snapshot", node, out, "--size", "320x180", "--quality", "70", cwd=tmp_path))
    img = decode_jpeg(out)
    assert img.size == (320, 180)
    # A real frame, not a blank buffer: the picture has more than one colour.
    extrema = img.convert("L").getextrema()
    assert extrema[0] != extrema[1], f"snapshot of {node} is one flat colour {extrema}"


def test_snapshot_of_a_missing_device_fails_cleanly(lane, tmp_path):
    if lane.name == "vivid":
        pytest.skip(
            "touches no device: the emulator lane covers it (each CLI run costs ~10 s here)"
        )
    missing = lane.device_dir / "video99"
    assert not missing.exists()
    out = tmp_path / "none.jpg"
    result = camsvc("snapshot", missing, out, cwd=tmp_path)
    assert result.returncode != 0
    assert not out.exists(), "a failed snapshot must not leave a file behind"
    assert result.stderr.strip(), "a failed snapshot says why on stderr"
    assert "Traceback" not in result.stderr, result.stderr


def test_snapshot_fails_while_unplugged_and_works_after_replug(lane, tmp_path):
    node = lane.nodes()[0]
    lane.unplug(node)
    try:
        gone = tmp_path / "gone.jpg"
        result = camsvc("snapshot", node, gone, cwd=tmp_path)
        assert result.returncode != 0
        assert not gone.exists()
        assert "Traceback" not in result.stderr, result.stderr
    finally:
        lane.replug(node)
    back = tmp_path / "back.jpg"
    ok(camsvc("snapshot", node, back, "--size", "640x480", cwd=tmp_path))
    assert decode_jpeg(back).size == (640, 480)
