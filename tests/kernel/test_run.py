"""Host-side checks of the kernel-lane runner's pieces that need no QEMU (fast, no network)."""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _load_runner():
    spec = importlib.util.spec_from_file_location("kernel_lane_run", HERE / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


run = _load_runner()


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio missing")
def test_cpio_archive_lists_and_extracts_with_gnu_cpio(tmp_path):
    archive = run._cpio_newc(
        [
            ("bin", 0o040755, b""),
            ("bin/tool", 0o100755, b"#!/bin/sh\necho hi\n"),
            ("bin/sh", 0o120777, b"tool"),
            ("odd", 0o100644, b"x" * 5),
        ]
    )
    (tmp_path / "a.cpio").write_bytes(archive)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "-F", str(tmp_path / "a.cpio")], cwd=out, check=True)
    assert (out / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert (out / "bin/sh").readlink() == Path("tool")
    assert (out / "odd").read_bytes() == b"xxxxx"


def _fake_module(info: bytes) -> bytes:
    """A minimal ELF64 object with a .modinfo section holding info."""
    shstr = b"\0.shstrtab\0.modinfo\0"
    body_off = 64
    info_off = body_off + len(shstr)
    shoff = info_off + len(info)
    shoff += -shoff % 8
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 1)
    sections = bytearray(64 * 3)
    struct.pack_into("<IIQQQQ", sections, 64, 1, 3, 0, 0, body_off, len(shstr))
    struct.pack_into("<IIQQQQ", sections, 128, 11, 1, 0, 0, info_off, len(info))
    data = bytes(header) + shstr + info
    return data + b"\0" * (shoff - len(data)) + bytes(sections)


def test_modinfo_depends_is_read_from_the_elf_section():
    data = _fake_module(b"license=GPL\0depends=videodev,v4l2-tpg\0name=vivid\0")
    info = run._elf_modinfo(data)
    assert info["depends"] == "videodev,v4l2-tpg"
    assert info["name"] == "vivid"


def test_guest_script_quotes_the_repository_and_sets_the_lane_environment():
    script = run.guest_script(Path("/tmp/ci x/main"), ["-k", "a b"], color=False)
    assert "cd '/tmp/ci x/main'" in script
    assert "CAMSVC_TEST_DEVICE_DIR=/dev" in script
    assert "PYTHONDONTWRITEBYTECODE=1" in script
    assert "-m device tests/device -p no:cacheprovider --color=no -k 'a b'" in script
    custom = run.guest_script(Path("/r"), [], color=False, command="ls /dev/video*")
    assert "sh -c 'ls /dev/video*'" in custom


def test_exit_marker_is_found_in_a_console_line():
    m = run.EXIT_MARKER.search("\x1b[0mCAMSVC-GUEST-EXIT=5\r")
    assert m and m.group(1) == "5"
