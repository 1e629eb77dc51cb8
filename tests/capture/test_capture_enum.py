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


def test_stepwise_and_continuous_rows_are_grouped():
    """The C module's flat rows become formats with stepwise sizes and continuous rates."""
    from camsvc.capture._enum import _formats
    from camsvc.capture._native import ffi

    rows = ffi.new("struct cap_mode[]", 3)
    for i, (fourcc, ival) in enumerate([(0x3231564E, 1), (0x3231564E, 1), (0x56595559, 2)]):
        r = rows[i]
        r.fourcc, r.size_type = fourcc, 3
        r.width, r.height, r.max_width, r.max_height = 160, 120, 1920, 1080
        r.step_width, r.step_height = 16, 8
        r.ival_type, r.num, r.den = ival, 1, 30 if i == 0 else 15
        r.max_num, r.max_den = (0, 0) if ival == 1 else (1, 1)
    formats = {f.fourcc: f for f in _formats([rows[i] for i in range(3)])}
    nv12 = formats["NV12"]
    (size,) = nv12.sizes
    assert (size.kind, size.max_width, size.step_height) == ("stepwise", 1920, 8)
    assert [iv.fps for iv in size.intervals] == [30.0, 15.0]
    (yuyv_size,) = formats["YUYV"].sizes
    (rate,) = yuyv_size.intervals
    assert (rate.kind, rate.fps, rate.max_denominator) == ("continuous", 15.0, 1)
