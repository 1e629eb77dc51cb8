"""Enumeration: which nodes are cameras, and every format, size and interval they offer."""

from __future__ import annotations

import pytest

from camsvc.capture import DeviceInfo, NotACamera, list_devices, probe

SIZES = {(640, 480), (1280, 720), (1920, 1080)}
RATES = {15.0, 30.0, 60.0}


def test_lists_capture_nodes_and_skips_metadata(make_camera, emu_dir):
    """A capture node is listed with its identity; a metadata node is not."""
    cam = make_camera(card="Front Door")
    meta = make_camera(kind="metadata")
    found = {info.path: info for info in list_devices(emu_dir)}
    assert str(cam.path) in found
    assert str(meta.path) not in found
    info = found[str(cam.path)]
    assert isinstance(info, DeviceInfo)
    assert info.card == "Front Door"
    assert info.driver and info.bus_info
    assert info.device_caps & 0x1  # V4L2_CAP_VIDEO_CAPTURE
    assert info.device_caps & 0x04000000  # V4L2_CAP_STREAMING
    assert not info.multiplanar


def test_every_format_size_and_interval(node):
    """MJPEG, YUYV and NV12, each at three discrete sizes with three discrete rates."""
    info = probe(node.path)
    assert info is not None
    formats = {f.fourcc: f for f in info.formats}
    assert {"MJPG", "YUYV", "NV12"} <= set(formats)
    assert formats["MJPG"].compressed and not formats["YUYV"].compressed
    for fmt in formats.values():
        assert {(s.width, s.height) for s in fmt.sizes} == SIZES
        for size in fmt.sizes:
            assert size.kind == "discrete"
            assert {iv.fps for iv in size.intervals} == RATES
            assert all(iv.kind == "discrete" for iv in size.intervals)


def test_probe_of_metadata_node_is_none(make_camera):
    """probe() tells a non-camera V4L2 node by returning None."""
    assert probe(make_camera(kind="metadata").path) is None


def test_missing_directory_lists_nothing(tmp_path):
    """A directory that does not exist has no cameras."""
    assert list_devices(tmp_path / "nowhere") == []


def test_not_a_v4l2_node(tmp_path):
    """A regular file named like a node is not a camera."""
    fake = tmp_path / "video0"
    fake.write_bytes(b"")
    assert list_devices(tmp_path) == []
    with pytest.raises(NotACamera) as err:
        probe(fake)
    assert err.value.path == str(fake)
