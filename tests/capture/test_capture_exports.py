"""The public face of camsvc.capture: exactly these names, each documented."""

from __future__ import annotations

import camsvc.capture as capture

EXPORTS = {
    "DEFAULT_BUFFERS", "DEFAULT_DIR", "DEFAULT_QUALITY", "BadFrame", "Camera", "CameraClosed",
    "CaptureError", "CaptureStats", "DeviceAccessDenied", "DeviceBusy", "DeviceGone",
    "DeviceInfo", "DeviceNotFound", "EncodeAhead", "Format", "Frame", "FrameInterval", "FrameSize",
    "FrameTimeout", "JpegFrame", "JpegJob", "NoSpace", "NotACamera", "PixelFormat",
    "UnsupportedFormat", "fourcc_code", "fourcc_name", "frames", "list_devices", "probe",
    "scale_for", "snapshot", "wait_frame",
}  # fmt: skip


def test_exports_are_pinned():
    """__all__ lists the public API and nothing else."""
    assert set(capture.__all__) == EXPORTS
    for name in EXPORTS:
        obj = getattr(capture, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_are_oserrors():
    """Every capture error is an OSError with errno and path."""
    err = capture.DeviceGone(19, "gone", "/dev/video0")
    assert isinstance(err, OSError) and isinstance(err, capture.CaptureError)
    assert (err.errno, err.path) == (19, "/dev/video0")
    assert "/dev/video0" in str(err) and "ENODEV" in str(err)


def test_fourcc_round_trip():
    """FourCC strings and V4L2 codes convert both ways."""
    assert capture.fourcc_code("MJPG") == 0x47504A4D
    assert capture.fourcc_name(0x56595559) == "YUYV"


def test_scale_for():
    """The smallest power-of-two divisor that fits, 8 at most."""
    assert capture.scale_for(1920, 1080, None) == 1
    assert capture.scale_for(1920, 1080, (1920, 1080)) == 1
    assert capture.scale_for(1920, 1080, (960, 540)) == 2
    assert capture.scale_for(1920, 1080, (500, 500)) == 4
    assert capture.scale_for(1920, 1080, (10, 10)) == 8
